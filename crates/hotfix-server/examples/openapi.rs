//! Prints the server's OpenAPI document (the one `GET /api/openapi.json`
//! serves), for client generators and diffing without a running server:
//! `cargo run -p hotfix-server --example openapi > openapi.json`.

fn main() {
    println!("{}", hotfix_server::openapi::json());
}
