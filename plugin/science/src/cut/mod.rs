//! Wire cutting: where to cut ([`find`]), what the cut leaves ([`plan`]), which circuits to run
//! ([`variants`]) and how to stitch their results together ([`reconstruct`]).
//!
//! The science only: nothing here simulates, schedules or stores; see `quargo::pipeline` for the
//! local run that ties it to the simulator.

pub mod find;
pub mod plan;
pub mod reconstruct;
pub mod variants;

pub use find::{find_cuts, FindError, FindOptions};
pub use plan::{CutPlan, Fragment, PlanError, Segment, SegmentEnd, SegmentStart, WireCut};
pub use reconstruct::{
    distribution, distribution_stderr, expectation_terms, project_to_simplex, FragmentResults,
};
pub use variants::{
    fragment_variants, output_bases, variant_circuit, Basis, Prep, Variant, VariantKey,
};

#[cfg(test)]
mod tests_physics;
