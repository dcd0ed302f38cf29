//! Metrics and in-flight gauges.
