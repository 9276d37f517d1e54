//! Bar charts as inline SVG, drawn on the server (no script): numbers and the given
//! labels only, so the markup is safe to embed.

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 20.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One bar per (label, value), scaled to the largest; each bar has a tooltip.
pub fn bars(title: &str, values: &[(String, f64)]) -> String {
    let max = values.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let n = values.len().max(1) as f64;
    let slot = WIDTH / n;
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {WIDTH} {h}\" width=\"100%\" class=\"chart\"><title>{t}</title>",
        t = escape(title),
        h = HEIGHT + AXIS,
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let height = if max > 0.0 { v / max * HEIGHT } else { 0.0 };
        let x = i as f64 * slot;
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\" fill=\"#0972d3\"><title>{l}: {v:.6}</title></rect>",
            y = HEIGHT - height,
            w = (slot * 0.8).max(1.0),
            l = escape(label),
        ));
        if values.len() <= 31 {
            out.push_str(&format!(
                "<text x=\"{tx:.1}\" y=\"{ty}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5f6b7a\">{l}</text>",
                tx = x + slot * 0.4,
                ty = HEIGHT + 14.0,
                l = escape(label),
            ));
        }
    }
    out.push_str(&format!(
        "<text x=\"{WIDTH}\" y=\"12\" font-size=\"11\" text-anchor=\"end\" fill=\"#16191f\">max {max:.6}</text></svg>"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars("t<", &[("a&".into(), 1.0), ("b".into(), 2.0)]);
        assert!(svg.contains("height=\"80.0\"") && svg.contains("height=\"160.0\""));
        assert!(svg.contains("t&lt;") && svg.contains("a&amp;"));
        assert!(!svg.contains("a&:"));
    }
}
