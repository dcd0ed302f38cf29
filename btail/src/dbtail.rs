//! ΔBtail: Track, Update, ForgetPast, GetAt, slices and concurrent rebuild.
