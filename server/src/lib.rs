//! # sockpool-server
//!
//! The reference multi-worker server for the sockpool protocols.
#![warn(missing_docs)]
