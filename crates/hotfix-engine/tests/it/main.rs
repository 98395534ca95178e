//! The engine's integration tests, one binary: whole steps (`start`,
//! `push`, `approve`, `ship`) on a real repository with a bare origin, a
//! real SQLite store, the local forge and the `command` deployer with real
//! scripts, and production's health given by an injected, scripted probe
//! (`Engine::probe`) instead of an HTTP server: what the watch decides is
//! tested without timing a real service.

mod ship_watch;
