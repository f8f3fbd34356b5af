//! Git and folder catalog sources (being written).
