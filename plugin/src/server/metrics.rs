//! Prometheus metrics of the plugin server (prometheus-client): calls by op and phase, call
//! latency, jobs running, and the cache's counters mirrored at scrape time (every
//! [`Event`], named as `quargo cache stats` names it).

use crate::cache::{Cache, Event};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub op: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<OpLabels, Histogram>,
    pub jobs_running: Gauge,
    cache_events: Family<EventLabels, Counter>,
    /// Cache counts already mirrored into `cache_events`.
    mirrored: Mutex<[u64; Event::ALL.len()]>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("quargo");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "template.execute calls by op and reply phase",
            calls.clone(),
        );
        let latency = Family::<OpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "call_duration_seconds",
            "template.execute latency by op",
            latency.clone(),
        );
        let jobs_running = Gauge::default();
        registry.register(
            "jobs_running",
            "background jobs running in this process",
            jobs_running.clone(),
        );
        let cache_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "cache_events",
            "semantic cache events (hits, misses, proven collisions rejected, ...)",
            cache_events.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            jobs_running,
            cache_events,
            mirrored: Mutex::new([0; Event::ALL.len()]),
        }
    }
}

impl Metrics {
    pub fn record_call(&self, op: &str, phase: &str, seconds: f64) {
        self.calls
            .get_or_create(&CallLabels {
                op: op.to_string(),
                phase: phase.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&OpLabels { op: op.to_string() })
            .observe(seconds);
    }

    /// The Prometheus text exposition, with the cache's counters brought up to date.
    pub fn render(&self, cache: Option<&Cache>) -> String {
        if let (Some(cache), Ok(mut mirrored)) = (cache, self.mirrored.lock()) {
            for (i, event) in Event::ALL.into_iter().enumerate() {
                let now = cache.local_count(event);
                let delta = now.saturating_sub(mirrored[i]);
                if delta > 0 {
                    self.cache_events
                        .get_or_create(&EventLabels {
                            event: event.name().to_string(),
                        })
                        .inc_by(delta);
                    mirrored[i] = now;
                }
            }
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
