//! The stores' integration tests, one binary: each module is what used to
//! be its own test file.

mod postgres;
mod sqlite;
