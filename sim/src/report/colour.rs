//! Colours: one per pod, generated so that no two pods share one however many there are, and a
//! short list of strong colours for the policies' lines. Fixed colours of the encoding (free,
//! unhealthy, faults) live here too so the picture and its legend agree.

/// Background of a bar: the part of a GPU nobody holds.
pub const FREE: &str = "#ececec";
/// Outline and hatching of an unhealthy GPU.
pub const UNHEALTHY: &str = "#c62828";
/// Border and marker of a node with a spreading fault.
pub const FAULT: &str = "#e65100";
/// Memory held, when the picture is too large to colour each pod.
pub const MEM_TOTAL: &str = "#5b8db8";
/// Compute held, when the picture is too large to colour each pod.
pub const CORE_TOTAL: &str = "#e8912d";

/// Hue step between consecutive pods: the golden angle, so hues never repeat and neighbours
/// in drawing order (usually neighbours on a GPU) are far apart on the wheel.
const GOLDEN_ANGLE_DEG: f64 = 137.507_764;

/// The colour of the pod drawn `index`-th. Lightness and saturation cycle too, so that pods
/// whose hues end up close still differ.
pub fn pod(index: usize) -> String {
    let hue = (index as f64 * GOLDEN_ANGLE_DEG) % 360.0;
    let (sat, light) = match index % 3 {
        0 => (70, 48),
        1 => (60, 62),
        _ => (75, 36),
    };
    format!("hsl({hue:.2},{sat}%,{light}%)")
}

/// Strong, mutually distinct line colours for the first policies.
const LINES: [&str; 10] = [
    "#1565c0", "#d32f2f", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#6d4c41", "#ad1457",
    "#616161", "#9e9d24",
];

/// The line colour of the `index`-th policy; past the fixed list, generated ones.
pub fn policy(index: usize) -> String {
    match LINES.get(index) {
        Some(c) => (*c).to_string(),
        None => pod(index),
    }
}
