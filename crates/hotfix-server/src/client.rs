//! (stub) The CLI's remote mode: a Store over the JSON API.
