//! A panic is a bug, never an outcome: a panic in a backend call continues in the caller of the
//! handle (reads, writes, stream setup) or in the stream's consumer (the producer), with its own
//! payload, after the work released its permits; at the IO worker it crashes the worker rather
//! than being answered as an error.

mod common;

use std::future::Future;
use std::time::Duration;

use common::{PLANTED_PANIC, assert_every_permit_back, gated_handle};
use engine::backend::ColdStorageWrite;
use engine::remote::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, FrameError, Request, ServerFrame, read_frame, write_frame,
};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::rt::panic_message;
use engine::{Filter, MemBackend};
use model::conformance::sample_block;

/// Runs `op` in a task of its own and returns the message it panicked with.
async fn panic_of<T: Send + 'static>(op: impl Future<Output = T> + Send + 'static) -> String {
    let error = match tokio::spawn(op).await {
        Ok(_) => panic!("the op must panic, not return"),
        Err(error) => error,
    };
    assert!(error.is_panic(), "the op must panic, not be cancelled");
    panic_message(&error.into_panic()).to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_panicking_read_panics_its_caller_and_returns_its_permit() {
    let (handle, controls, _cancel) = gated_handle();
    controls.arm_panic();
    let h = handle.clone();
    let message = panic_of(async move { h.get_latest_block().await }).await;
    assert_eq!(message, PLANTED_PANIC);
    assert_every_permit_back(&handle, &controls, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_write_panics_its_caller_and_returns_its_permits() {
    let (handle, controls, _cancel) = gated_handle();
    controls.arm_panic();
    let h = handle.clone();
    let message = panic_of(async move { h.append_block(sample_block(0, 1, 1)).await }).await;
    assert_eq!(message, PLANTED_PANIC);
    assert_every_permit_back(&handle, &controls, 0).await;
}

/// The setup runs in the caller's own task, so its panic needs no passing on; this pins that.
#[tokio::test(start_paused = true)]
async fn a_panic_in_stream_setup_panics_its_caller() {
    let (handle, controls, _cancel) = gated_handle();
    handle.append_block(sample_block(0, 1, 1)).await.unwrap();
    controls.arm_panic();
    let h = handle.clone();
    // No end block: the setup reads the latest block, which panics.
    let filter = Filter {
        from_block: Some(0),
        ..Filter::default()
    };
    let message = panic_of(async move {
        h.stream_logs(filter, 10, Duration::from_secs(5))
            .await
            .map(drop)
    })
    .await;
    assert_eq!(message, PLANTED_PANIC);
    assert_every_permit_back(&handle, &controls, 1).await;
}

/// The consumer must not take a producer's panic for the end of a complete stream.
#[tokio::test(start_paused = true)]
async fn a_panicking_stream_producer_panics_its_consumer_and_returns_its_permit() {
    let (handle, controls, _cancel) = gated_handle();
    handle.append_block(sample_block(0, 1, 1)).await.unwrap();
    let stream = handle
        .stream_logs(Filter::range(0, 0), 10, Duration::from_secs(5))
        .await
        .expect("the stream starts before its producer runs");
    controls.arm_panic();
    let message = panic_of(stream.collect_all()).await;
    assert_eq!(message, PLANTED_PANIC);
    assert_every_permit_back(&handle, &controls, 1).await;
}

/// A request that panics at the worker is answered by no frame (an error frame would pass for
/// an ordinary backend failure): the worker crashes, its connection closes, and serving it
/// panics with the request's panic.
#[tokio::test(start_paused = true)]
async fn a_panic_at_the_worker_crashes_the_worker_instead_of_answering() {
    let requests = [
        Request::GetLatestBlock,
        Request::AppendBlock(sample_block(1, 1, 1)),
        Request::StreamLogs {
            filter: Filter::range(0, 0),
            from: 0,
            to: 0,
            max_logs: 10,
            initial_credit: 4,
            anchor: None,
        },
    ];
    for request in requests {
        let (gated, controls) = common::gated(MemBackend::new());
        controls
            .inner
            .append_block(sample_block(0, 1, 1))
            .await
            .unwrap();
        let worker = Worker::new(gated, WorkerConfig::default());
        let (mut raw, server) = tokio::io::duplex(1 << 16);
        let w = worker.clone();
        let serving = tokio::spawn(async move { w.serve_connection(server).await });
        controls.arm_panic();
        let frame = ClientFrame::Request {
            id: 1,
            budget_ms: 5_000,
            op: Box::new(request.clone()),
        };
        write_frame(&mut raw, &frame, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(60),
            read_frame::<_, ServerFrame>(&mut raw, DEFAULT_MAX_FRAME_BYTES),
        )
        .await
        .unwrap_or_else(|_| panic!("{request:?}: the worker neither answered nor closed"));
        assert!(
            matches!(answer, Err(FrameError::Closed)),
            "{request:?}: the connection must close without a frame, got {answer:?}"
        );
        let error = serving.await.expect_err("serving a crashed worker panics");
        assert!(error.is_panic());
        let message = panic_message(&error.into_panic()).to_owned();
        assert!(message.contains(PLANTED_PANIC), "{message}");
        assert!(worker.shutdown_token().is_cancelled(), "the worker crashed");
    }
}

/// The work of a read or a write runs in the caller's own task: its panic unwinds through the
/// caller's poll (caught here without any task between), with its own payload, after its
/// permits went back; it never comes out as an error such as `TaskTerminated`.
#[tokio::test(start_paused = true)]
async fn a_panic_in_inline_work_unwinds_in_the_callers_own_poll() {
    let (handle, controls, _cancel) = gated_handle();
    controls.arm_panic();
    let read = engine::rt::catch_unwind(handle.get_latest_block()).await;
    let panic = read.expect_err("the read must panic, not return");
    assert_eq!(panic_message(&panic), PLANTED_PANIC);
    controls.arm_panic();
    let write = engine::rt::catch_unwind(handle.append_block(sample_block(0, 1, 1))).await;
    let panic = write.expect_err("the write must panic, not return");
    assert_eq!(panic_message(&panic), PLANTED_PANIC);
    assert_every_permit_back(&handle, &controls, 0).await;
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(30), handle.wait_shutdown())
        .await
        .expect("no tracker token outlived the panics");
}
