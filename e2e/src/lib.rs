//! End-to-end tests of the sockpool binaries as separate processes (see `tests/`). The crate ships nothing: its
//! two binaries are `sockpool-server` and `sockpool-loadgen` under test-only names (`e2e-server`,
//! `e2e-loadgen`), built from the same `app::main` entry points, so the tests here can stop or kill a server
//! process while the load generator runs.
