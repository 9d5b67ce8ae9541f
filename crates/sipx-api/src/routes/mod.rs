//! Handlers, one file per resource. Each file holds the resource's DTOs next to its handlers:
//! the wire shape of an object and the code serving it change together.

pub mod app;
pub mod apps;
pub mod ops;
pub mod registrations;
pub mod sip_accounts;
