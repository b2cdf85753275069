//! Shared helpers for the sockpool benchmarks.
