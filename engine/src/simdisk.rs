//! SimDisk: an in-memory disk for redb with a volatile layer, crashes, torn writes, I/O errors and latency.
