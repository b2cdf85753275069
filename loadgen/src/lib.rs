//! # sockpool-loadgen
//!
//! A load generator on the sockpool SDK.
#![warn(missing_docs)]
