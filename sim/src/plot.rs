//! SVG charts with plotters' SVG backend: the latency CDF of each policy on one chart, and a
//! per-CPU utilization heatmap over time for each policy.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::engine::RunResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("--plot: cannot draw {}: {e}", path.display())
}

/// Writes `latency_cdf.svg` and `utilization_<policy>.svg` into `dir` (created if missing);
/// returns the files written.
pub fn write_all(dir: &Path, title: &str, results: &[RunResult]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--plot {}: cannot create the directory: {e}", dir.display()))?;
    let mut files = Vec::new();
    let cdf = dir.join("latency_cdf.svg");
    latency_cdf(&cdf, title, results)?;
    files.push(cdf);
    for r in results {
        let p = dir.join(format!("utilization_{}.svg", r.policy));
        heatmap(&p, title, r)?;
        files.push(p);
    }
    Ok(files)
}

/// One line per policy: fraction of samples at or below a latency (log x axis).
pub fn latency_cdf(path: &Path, title: &str, results: &[RunResult]) -> Result<(), String> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            (
                r.policy.clone(),
                r.stats
                    .latency
                    .cdf()
                    .into_iter()
                    .map(|(v, f)| ((v.max(1)) as f64 / 1e3, f))
                    .collect(),
            )
        })
        .collect();
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for (_, c) in &curves {
        for &(x, _) in c {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if hi <= 0.0 {
        lo = 0.001;
        hi = 1.0;
    }
    let lo = lo.max(0.001);
    let hi = hi.max(lo * 10.0);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("latency CDF: {title}"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| {
            if *x >= 10.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        })
        .x_desc("latency (us, log scale)")
        .y_desc("fraction of tasks")
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(c.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// CPUs on the y axis, time on the x axis, darker = busier.
pub fn heatmap(path: &Path, title: &str, r: &RunResult) -> Result<(), String> {
    let used = r.timeline.used_buckets(r.makespan_ns);
    let w = r.timeline.width_ns;
    let cpus = r.cpus;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let span_ms = (used as u64 * w) as f64 / 1e6;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("CPU utilization over time, policy {}: {title}", r.policy),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..span_ms, 0.0..cpus as f64)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("virtual time (ms)")
        .y_desc("CPU")
        .draw()
        .map_err(|e| err(path, e))?;
    let bucket_ms = w as f64 / 1e6;
    let cells = (0..cpus)
        .flat_map(|c| (0..used).map(move |b| (c, b)))
        .map(|(c, b)| {
            let u = (r.timeline.busy_ns(c, b) as f64 / w as f64).clamp(0.0, 1.0);
            let shade = (255.0 * (1.0 - u)) as u8;
            Rectangle::new(
                [
                    (b as f64 * bucket_ms, c as f64),
                    ((b + 1) as f64 * bucket_ms, (c + 1) as f64),
                ],
                RGBColor(shade, shade, 255).filled(),
            )
        });
    chart.draw_series(cells).map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
