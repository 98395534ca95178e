pub mod chat;
pub mod github;
