//! Metrics through a recording `metrics` recorder: error counters labelled by kind, op
//! durations, permit waits per semaphore and in-flight gauges that come back to zero.
//! One test per binary: the recorder is global.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{ColdStorage, ColdStorageError, Config, Filter, MemBackend};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use model::conformance::sample_block;
use tokio_util::sync::CancellationToken;

/// Metric name plus labels → counter total, gauge value or histogram sample count.
type Values = Arc<Mutex<BTreeMap<String, f64>>>;

struct Slot {
    values: Values,
    key: String,
}

impl Slot {
    fn add(&self, delta: f64) {
        *self
            .values
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += delta;
    }
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        self.add(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.values
            .lock()
            .unwrap()
            .insert(self.key.clone(), value as f64);
    }
}

impl GaugeFn for Slot {
    fn increment(&self, value: f64) {
        self.add(value);
    }
    fn decrement(&self, value: f64) {
        self.add(-value);
    }
    fn set(&self, value: f64) {
        self.values.lock().unwrap().insert(self.key.clone(), value);
    }
}

impl HistogramFn for Slot {
    fn record(&self, _value: f64) {
        self.add(1.0);
    }
}

struct Recording {
    values: Values,
}

impl Recording {
    fn slot(&self, key: &Key) -> Arc<Slot> {
        let mut name = key.name().to_string();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        if !labels.is_empty() {
            name = format!("{name}{{{}}}", labels.join(","));
        }
        Arc::new(Slot {
            values: self.values.clone(),
            key: name,
        })
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.slot(key))
    }
}

#[tokio::test(start_paused = true)]
async fn ops_record_durations_permit_waits_errors_and_gauges() {
    let values = Values::default();
    metrics::set_global_recorder(Recording {
        values: values.clone(),
    })
    .expect("first recorder");
    let handle = ColdStorage::new(
        MemBackend::new(),
        CancellationToken::new(),
        Config::default(),
    );
    for n in 0..=2 {
        handle.append_block(sample_block(n, 2, 2)).await.unwrap();
    }
    handle.get_header_by_number(1).await.unwrap();
    handle.get_header_by_number(1).await.unwrap();
    handle.truncate_above(1).await.unwrap();
    let too_many = handle.get_logs(Filter::range(0, 1), 1).await;
    assert_eq!(too_many, Err(ColdStorageError::TooManyLogs { limit: 1 }));
    assert!(handle.get_logs(Filter::range(3, 2), 1).await.is_err());
    let stream = handle
        .stream_logs(Filter::range(0, 1), 100, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stream.collect_all().await.0.len(), 8);
    handle.shutdown();
    handle.wait_shutdown().await;

    let values = values.lock().unwrap();
    let get = |key: &str| values.get(key).copied().unwrap_or(0.0);
    assert_eq!(
        get("cold.op_errors_total{error=too_many_logs,op=get_logs}"),
        1.0,
        "{values:#?}"
    );
    assert_eq!(
        get("cold.op_errors_total{error=invalid_input,op=get_logs}"),
        1.0
    );
    assert_eq!(get("cold.op_duration_us{op=append_block}"), 3.0);
    assert_eq!(
        get("cold.op_duration_us{op=get_header}"),
        2.0,
        "a miss and a cache hit"
    );
    assert_eq!(get("cold.op_duration_us{op=stream_logs}"), 1.0);
    assert_eq!(
        get("cold.permit_wait_us{sem=read}"),
        2.0,
        "the miss and one get_logs: invalid input takes no permit"
    );
    assert_eq!(get("cold.permit_wait_us{sem=write}"), 4.0);
    assert_eq!(get("cold.permit_wait_us{sem=drain}"), 4.0);
    assert_eq!(get("cold.permit_wait_us{sem=stream}"), 1.0);
    for gauge in [
        "cold.reads_in_flight",
        "cold.writes_in_flight",
        "cold.streams_active",
    ] {
        assert!(values.contains_key(gauge), "{gauge} never moved");
        assert_eq!(get(gauge), 0.0, "{gauge} did not come back to zero");
    }
}
