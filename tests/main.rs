//! quargo's whole flows, one test binary: the CLI as a user runs it, the plugin over HTTP as Argo
//! calls it (and in process through the router), the shared cache on a real Redis, the manifests
//! against Argo's published schemas, the plugin's fuzz target, and the container images under Docker.

mod cli;
mod docker;
mod kustomize;
mod plugin;
mod plugin_fuzz;
mod plugin_manifest;
mod redis;
mod router;
mod support;
