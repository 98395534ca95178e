//! The file helpers' integration tests, one binary (the layout of every
//! crate): each module is what used to be its own test file.

mod modes;
