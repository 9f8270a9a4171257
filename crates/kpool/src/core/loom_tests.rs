//! loom models of the core (run with `RUSTFLAGS="--cfg kpool_loom"`).
