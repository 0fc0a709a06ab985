//! What a component of a process asks of RAM and VRAM.

use serde::Serialize;

/// One line of a memory budget: a component, its RAM and VRAM in bytes, and how
/// the figure was obtained (so a reader can check it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemandTerm {
    /// Short name shown in the budget table (`weights`, `history`).
    pub component: String,
    /// Resident memory in bytes.
    pub ram_bytes: u64,
    /// GPU memory in bytes.
    pub vram_bytes: u64,
    /// Where the figure comes from (`503,299 params x 10 members x 4 B`).
    pub basis: String,
}

impl DemandTerm {
    /// A term with both figures and its basis.
    #[must_use]
    pub fn new(
        component: impl Into<String>,
        ram_bytes: u64,
        vram_bytes: u64,
        basis: impl Into<String>,
    ) -> Self {
        DemandTerm {
            component: component.into(),
            ram_bytes,
            vram_bytes,
            basis: basis.into(),
        }
    }
}
