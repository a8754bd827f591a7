//! SVG charts (placeholder replaced below).
