//! The btail world's frames: load requests and responses between wcfs and zstor, and the δZ
//! stream. Input: one byte choosing the frame kind, then the frame's payload. A payload must
//! decode or be refused with an error, and a decoded frame must survive encode∘decode.

/// The target.
pub fn run(data: &[u8]) {
    if let Some((&kind, payload)) = data.split_first() {
        sim::fuzz_hooks::btail_frame(kind, payload);
    }
}
