//! The semantic circuit cache. So far: circuit IDs from ZX reduction and Weisfeiler-Leman hashing,
//! with proof of equality ([`id`]). The stores, keys and single-flight come with the cache issue.

pub mod id;
