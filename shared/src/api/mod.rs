//! Kubernetes API objects, as kelp stores and serves them.
//!
//! Each kind is stored at its current GA version; [`kinds`] is the one table of what kelp
//! knows (group, version, plural, short names, scope), [`object::Object`] holds any of them.
//! Deserializing applies no defaults: [`defaults`] is a separate step, run by admission.

pub mod apps;
pub mod batch;
pub mod core;
pub mod defaults;
pub mod intstr;
pub mod kinds;
pub mod legacy;
pub mod meta;
pub mod networking;
pub mod object;
pub mod quantity;
pub mod rbac;
pub mod validation;

pub use intstr::IntOrString;
pub use kinds::KindInfo;
pub use meta::{ObjectMeta, Time};
pub use object::Object;
pub use quantity::Quantity;
