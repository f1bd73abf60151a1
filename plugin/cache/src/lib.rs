//! quargo's memory of results: the semantic circuit [`cache`] (circuit IDs from ZX reduction and
//! Weisfeiler-Leman hashing, hits proven equal before they are served) over a content-addressed
//! [`store`] (embedded LMDB or shared Redis). It builds on `quargo-science` and knows nothing of
//! Argo, HTTP or the command line.

pub mod cache;
pub mod store;
