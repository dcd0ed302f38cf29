//! Log streams: the bounded, deadline-bounded default producer.
