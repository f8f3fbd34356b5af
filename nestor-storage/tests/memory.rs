//! The in-memory store runs the whole conformance suite.

use std::sync::Arc;

use nestor_core::testing::Fixture;
use nestor_storage::MemoryStore;

nestor_core::store_conformance_tests!(async { Fixture::new(Arc::new(MemoryStore::new())) });
