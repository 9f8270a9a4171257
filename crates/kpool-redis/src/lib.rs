#![forbid(unsafe_code)]
//! wip
