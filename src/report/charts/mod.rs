//! One plotting function per chart; each chart is written as SVG (also inlined in the HTML) and PNG.

mod load;

pub use load::{Line, LoadChart};

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::cache_map::{CacheMap, StepState};
use crate::cause::Cause;
use crate::results::data::{phase_ms, phase_name, RunData, TimeCell, PHASES};
use super::format;
use super::verdict::Verdict;
use super::ReportError;
use crate::results::PipelineRunName;
use crate::strategy::Strategy;

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core), embedded so that PNG text renders the same on
/// any machine; its licence is `fonts/LICENSE-DejaVu.txt`.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "sans-serif";

/// One colour per strategy, in run.json's order (Okabe-Ito, readable with colour blindness).
pub const STRATEGY_COLORS: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xF0, 0xE4, 0x42),
    RGBColor(0x44, 0x44, 0x44),
];
/// In `Phase::ALL` order: provision, pull, cache import, build, cache export, push, teardown, measure.
pub const PHASE_COLORS: [RGBColor; 8] = [
    RGBColor(0x9E, 0x9E, 0x9E),
    RGBColor(0x80, 0xB1, 0xD3),
    RGBColor(0xB3, 0xDE, 0x69),
    RGBColor(0x3B, 0x6F, 0xB6),
    RGBColor(0x1B, 0x9E, 0x77),
    RGBColor(0xFD, 0xB4, 0x62),
    RGBColor(0xCC, 0xCC, 0xCC),
    RGBColor(0xE7, 0xE7, 0xE7),
];
pub const COST_COLORS: [RGBColor; 3] = [
    RGBColor(0xE4, 0x1A, 0x1C),
    RGBColor(0x4D, 0xAF, 0x4A),
    RGBColor(0x98, 0x4E, 0xA3),
];
const FAILED_COLOR: RGBColor = RGBColor(0xB0, 0x00, 0x20);

pub fn strategy_color(index: usize) -> RGBColor {
    STRATEGY_COLORS[index % STRATEGY_COLORS.len()]
}

pub fn state_color(state: StepState) -> RGBColor {
    match state {
        StepState::Hit => RGBColor(0x4C, 0xAF, 0x50),
        StepState::Miss(Some(Cause::NoCache)) => RGBColor(0x7B, 0x1F, 0xA2),
        StepState::Miss(Some(Cause::InputChanged)) => RGBColor(0xD3, 0x2F, 0x2F),
        StepState::Miss(Some(Cause::AfterMiss)) => RGBColor(0xF4, 0xA5, 0x82),
        StepState::Miss(Some(Cause::Evicted)) => RGBColor(0x1E, 0x88, 0xE5),
        StepState::Miss(Some(Cause::Unexplained)) => RGBColor(0x8D, 0x6E, 0x63),
        StepState::Miss(Some(_)) => RGBColor(0xFF, 0xB3, 0x00),
        StepState::Miss(None) => RGBColor(0x9E, 0x9E, 0x9E),
        StepState::Anomaly => RGBColor(0x00, 0x00, 0x00),
        StepState::Base => RGBColor(0xBD, 0xBD, 0xBD),
        StepState::Metadata => RGBColor(0xE8, 0xEA, 0xF6),
        StepState::Skipped => RGBColor(0xF5, 0xF5, 0xF5),
        StepState::NotRun => RGBColor(0xFF, 0xFF, 0xFF),
    }
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// File name without extension.
    const NAME: &'static str;
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>;
}

/// Why plotters could not draw a chart, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DrawError(String);

fn err(e: impl std::fmt::Display) -> DrawError {
    DrawError(e.to_string())
}

fn ensure_font() -> Result<(), DrawError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(err("the embedded DejaVu Sans font could not be loaded"))
    }
}

/// Writes `NAME.svg` and `NAME.png` into `out_dir` and returns the SVG text.
pub fn render<C: Chart>(chart: &C, out_dir: &Path) -> Result<String, ReportError> {
    let fail = |e: DrawError| ReportError::Chart { chart: C::NAME, message: e.0 };
    ensure_font().map_err(fail)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(err(e)))?;
    }
    let svg_path = out_dir.join(format!("{}.svg", C::NAME));
    std::fs::write(&svg_path, &svg).map_err(|error| ReportError::Write {
        path: svg_path,
        error,
    })?;
    let png_path = out_dir.join(format!("{}.png", C::NAME));
    {
        let root = BitMapBackend::new(&png_path, chart.size()).into_drawing_area();
        chart.draw(&root).map_err(fail)?;
        root.present()
            .map_err(|e| fail(err(format!("cannot write {}: {e}", png_path.display()))))?;
    }
    Ok(svg)
}

fn text_style(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// A row of coloured squares with labels, above a chart (never on top of its bars).
/// Bars grouped along x by `groups`, a linear y axis from 0, and the mesh every chart shares.
fn grouped_chart<'a, DB: DrawingBackend>(
    plot: &'a DrawingArea<DB, Shift>,
    groups: &[impl AsRef<str>],
    y_max: f64,
    y_label_area: u32,
    y_desc: &str,
    x_desc: Option<&str>,
) -> Result<ChartContext<'a, DB, Cartesian2d<GroupAxis, RangedCoordf64>>, DrawError> {
    let mut chart = ChartBuilder::on(plot)
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(GroupAxis::new(groups), 0.0..y_max)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .x_label_style(text_style(14))
        .y_label_style(text_style(13))
        .y_desc(y_desc)
        .axis_desc_style(text_style(14));
    if let Some(x_desc) = x_desc {
        mesh.x_desc(x_desc);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

/// Paints the chart white with its legend in the top `height` pixels; returns the area below.
fn legend_on_top<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    height: u32,
    entries: &[(String, RGBColor)],
) -> Result<DrawingArea<DB, Shift>, DrawError> {
    root.fill(&WHITE).map_err(err)?;
    let (legend, plot) = root.split_vertically(height);
    draw_legend(&legend, entries)?;
    Ok(plot)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), DrawError> {
    let (width, _) = area.dim_in_pixel();
    let (mut x, mut y) = (70i32, 8i32);
    for (label, color) in entries {
        let label_px = (label.chars().count() as i32) * 8 + 34;
        if x + label_px > width as i32 && x > 70 {
            x = 70;
            y += 22;
        }
        area.draw(&Rectangle::new([(x, y), (x + 14, y + 14)], color.filled()))
            .map_err(err)?;
        area.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 14)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        area.draw(&Text::new(label.clone(), (x + 20, y), text_style(14)))
            .map_err(err)?;
        x += label_px;
    }
    Ok(())
}

/// The x extent of member `member` of `members` bars in group `group` (groups are 1 wide).
fn slot(group: usize, member: usize, members: usize) -> (f64, f64) {
    let width = 0.8 / members.max(1) as f64;
    let x0 = group as f64 + 0.1 + member as f64 * width;
    (x0 + width * 0.08, x0 + width * 0.92)
}

/// A y range that is never empty, with room above the tallest bar.
fn y_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.12
    } else {
        1.0
    }
}

/// An x axis of named groups, each one unit wide and labelled at its centre.
struct GroupAxis {
    names: Vec<String>,
}

impl GroupAxis {
    fn new(names: &[impl AsRef<str>]) -> GroupAxis {
        GroupAxis { names: names.iter().map(|n| n.as_ref().to_string()).collect() }
    }

    fn width(&self) -> f64 {
        self.names.len().max(1) as f64
    }
}

impl Ranged for GroupAxis {
    type ValueType = f64;
    type FormatOption = NoDefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        limit.0 + (value / self.width() * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        // Every group is labelled: a group without its name would be unreadable.
        (0..self.names.len()).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.width()
    }
}

impl ValueFormatter<f64> for GroupAxis {
    fn format_ext(&self, value: &f64) -> String {
        if *value < 0.0 {
            return String::new();
        }
        self.names
            .get(value.floor() as usize)
            .cloned()
            .unwrap_or_default()
    }
}

/// A vertical "n/a" or "all failed" note standing on the x axis where a bar would be.
fn note_at<DB: DrawingBackend>(
    chart: &mut ChartContext<DB, Cartesian2d<GroupAxis, RangedCoordf64>>,
    x: f64,
    y_max: f64,
    text: &str,
    color: RGBColor,
) -> Result<(), DrawError> {
    let style = (FONT_FAMILY, 13)
        .into_font()
        .transform(FontTransform::Rotate270)
        .color(&color);
    chart
        .draw_series(std::iter::once(Text::new(
            text.to_string(),
            (x, y_max * 0.02),
            style,
        )))
        .map_err(err)?;
    Ok(())
}

// ---------------------------------------------------------------- time per pipeline run

/// Median job wall time per strategy per pipeline run, with the min-max range across iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeChart {
    pub pipeline: Vec<PipelineRunName>,
    pub strategies: Vec<Strategy>,
    /// `cells[strategy][pipeline run]`
    pub cells: Vec<Vec<TimeCell>>,
}

/// One drawn bar, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeBar {
    pub strategy: usize,
    pub run: usize,
    pub x: (f64, f64),
    pub median_s: f64,
    /// Min and max across iterations; `None` when they are equal (one iteration, no spread).
    pub whisker: Option<(f64, f64)>,
}

impl TimeChart {
    pub fn from_data(data: &RunData) -> TimeChart {
        let pipeline = data.pipeline();
        let strategies = data.strategies();
        let cells = strategies
            .iter()
            .map(|&s| pipeline.iter().map(|run| data.wall(s, run.as_str())).collect())
            .collect();
        TimeChart {
            pipeline,
            strategies,
            cells,
        }
    }

    pub fn bars(&self) -> Vec<TimeBar> {
        let mut bars = vec![];
        for (strategy, row) in self.cells.iter().enumerate() {
            for (run, cell) in row.iter().enumerate() {
                if let Some(wall) = cell.wall_ms {
                    bars.push(TimeBar {
                        strategy,
                        run,
                        x: slot(run, strategy, self.strategies.len()),
                        median_s: wall.median / 1000.0,
                        whisker: (wall.max > wall.min)
                            .then_some((wall.min / 1000.0, wall.max / 1000.0)),
                    });
                }
            }
        }
        bars
    }

    /// Places where a strategy has jobs but none succeeded: (strategy, run, failed jobs).
    pub fn failures(&self) -> Vec<(usize, usize, usize)> {
        let mut out = vec![];
        for (strategy, row) in self.cells.iter().enumerate() {
            for (run, cell) in row.iter().enumerate() {
                if cell.wall_ms.is_none() && cell.failed > 0 {
                    out.push((strategy, run, cell.failed));
                }
            }
        }
        out
    }

    pub fn y_max_s(&self) -> f64 {
        y_top(
            self.bars()
                .iter()
                .map(|b| b.whisker.map_or(b.median_s, |(_, hi)| hi))
                .fold(0.0, f64::max),
        )
    }
}

impl Chart for TimeChart {
    const NAME: &'static str = "time-per-run";

    fn size(&self) -> (u32, u32) {
        let width = 240 + self.pipeline.len() as u32 * (60 + 26 * self.strategies.len() as u32);
        (width.clamp(640, 1400), 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let entries: Vec<(String, RGBColor)> = self
            .strategies
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), strategy_color(i)))
            .collect();
        let plot = legend_on_top(root, 54, &entries)?;
        let y_max = self.y_max_s();
        let mut chart = grouped_chart(
            &plot,
            &self.pipeline,
            y_max,
            60,
            "job wall time, s (median; whisker: min-max)",
            Some("pipeline run"),
        )?;
        let bars = self.bars();
        chart
            .draw_series(bars.iter().map(|b| {
                Rectangle::new(
                    [(b.x.0, 0.0), (b.x.1, b.median_s)],
                    strategy_color(b.strategy).filled(),
                )
            }))
            .map_err(err)?;
        for b in &bars {
            let Some((lo, hi)) = b.whisker else { continue };
            let mid = (b.x.0 + b.x.1) / 2.0;
            let cap = (b.x.1 - b.x.0) / 4.0;
            let lines = [
                vec![(mid, lo), (mid, hi)],
                vec![(mid - cap, lo), (mid + cap, lo)],
                vec![(mid - cap, hi), (mid + cap, hi)],
            ];
            chart
                .draw_series(
                    lines
                        .into_iter()
                        .map(|l| PathElement::new(l, BLACK.stroke_width(2))),
                )
                .map_err(err)?;
        }
        for (strategy, run, failed) in self.failures() {
            let (x0, x1) = slot(run, strategy, self.strategies.len());
            let text = format!("all {failed} failed");
            note_at(&mut chart, (x0 + x1) / 2.0, y_max, &text, FAILED_COLOR)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- phases

/// Per strategy, the pipeline total of each phase (sum over runs of the median over successful jobs).
#[derive(Debug, Clone, PartialEq)]
pub struct PhasesChart {
    pub strategies: Vec<Strategy>,
    /// `totals_ms[strategy][phase]`, phases in `PHASES` order; `None` when not recorded.
    pub totals_ms: Vec<[Option<f64>; 8]>,
}

impl PhasesChart {
    pub fn from_data(data: &RunData) -> PhasesChart {
        let strategies = data.strategies();
        let totals_ms = strategies
            .iter()
            .map(|&s| PHASES.map(|phase| data.pipeline_total(s, |j| phase_ms(j, phase))))
            .collect();
        PhasesChart {
            strategies,
            totals_ms,
        }
    }

    /// Stacked segments (strategy, phase index, bottom s, top s); missing phases are skipped.
    pub fn segments(&self) -> Vec<(usize, usize, f64, f64)> {
        let mut out = vec![];
        for (strategy, totals) in self.totals_ms.iter().enumerate() {
            let mut bottom = 0.0;
            for (phase, total) in totals.iter().enumerate() {
                if let Some(ms) = total {
                    let top = bottom + ms / 1000.0;
                    out.push((strategy, phase, bottom, top));
                    bottom = top;
                }
            }
        }
        out
    }
}

impl Chart for PhasesChart {
    const NAME: &'static str = "phases";

    fn size(&self) -> (u32, u32) {
        (
            (200 + self.strategies.len() as u32 * 120).clamp(640, 1400),
            460,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let entries: Vec<(String, RGBColor)> = PHASES
            .iter()
            .zip(PHASE_COLORS)
            .map(|(p, c)| (phase_name(*p).to_string(), c))
            .collect();
        let plot = legend_on_top(root, 40, &entries)?;
        let segments = self.segments();
        let y_max = y_top(segments.iter().map(|s| s.3).fold(0.0, f64::max));
        let mut chart = grouped_chart(&plot, &self.strategies, y_max, 60, "s, summed over the pipeline", None)?;
        chart
            .draw_series(segments.iter().map(|&(strategy, phase, bottom, top)| {
                let (x0, x1) = slot(strategy, 0, 1);
                Rectangle::new(
                    [(x0 + 0.15, bottom), (x1 - 0.15, top)],
                    PHASE_COLORS[phase].filled(),
                )
            }))
            .map_err(err)?;
        for (strategy, totals) in self.totals_ms.iter().enumerate() {
            if totals.iter().all(Option::is_none) {
                note_at(
                    &mut chart,
                    strategy as f64 + 0.5,
                    y_max,
                    format::MISSING,
                    BLACK,
                )?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- cost

/// Bytes moved and stored per strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct CostChart {
    pub strategies: Vec<Strategy>,
    /// `[pushed, pulled, registry storage]` per strategy, bytes.
    pub bytes: Vec<[Option<f64>; 3]>,
}

pub const COST_SERIES: [&str; 3] = [
    "pushed over the pipeline",
    "pulled over the pipeline",
    "registry storage after the last run",
];

impl CostChart {
    pub fn from_verdict(verdict: &Verdict, strategies: &[Strategy]) -> CostChart {
        let standing = |s: Strategy| {
            verdict
                .ranked
                .iter()
                .chain(&verdict.unranked)
                .find(|x| x.strategy == s)
                .map(|x| [x.bytes_pushed, x.bytes_pulled, x.registry_bytes])
        };
        CostChart {
            strategies: strategies.to_vec(),
            bytes: strategies
                .iter()
                .map(|&s| standing(s).unwrap_or([None; 3]))
                .collect(),
        }
    }
}

impl Chart for CostChart {
    const NAME: &'static str = "cost";

    fn size(&self) -> (u32, u32) {
        (
            (200 + self.strategies.len() as u32 * 130).clamp(640, 1400),
            460,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let entries: Vec<(String, RGBColor)> = COST_SERIES
            .iter()
            .zip(COST_COLORS)
            .map(|(s, c)| (s.to_string(), c))
            .collect();
        let plot = legend_on_top(root, 40, &entries)?;
        let mb = |b: f64| b / 1e6;
        let max = self
            .bytes
            .iter()
            .flatten()
            .flatten()
            .map(|b| mb(*b))
            .fold(0.0, f64::max);
        let y_max = y_top(max);
        let mut chart = grouped_chart(&plot, &self.strategies, y_max, 70, "MB (10^6 bytes)", None)?;
        for (strategy, figures) in self.bytes.iter().enumerate() {
            for (series, figure) in figures.iter().enumerate() {
                let (x0, x1) = slot(strategy, series, COST_SERIES.len());
                match figure {
                    Some(b) => {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x0, 0.0), (x1, mb(*b))],
                                COST_COLORS[series].filled(),
                            )))
                            .map_err(err)?;
                    }
                    None => note_at(&mut chart, (x0 + x1) / 2.0, y_max, format::MISSING, BLACK)?,
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- cache map

const CELL_W: i32 = 50;
const CELL_H: i32 = 24;
const LABEL_W: i32 = 340;
const HEADER_H: i32 = 120;
const LEGEND_H: i32 = 40;

/// The cache map as a picture (the HTML has the full grid with every iteration).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheMapChart<'a> {
    pub map: &'a CacheMap,
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

impl Chart for CacheMapChart<'_> {
    const NAME: &'static str = "cache-map";

    fn size(&self) -> (u32, u32) {
        let w = LABEL_W + self.map.columns.len() as i32 * CELL_W + 20;
        let h = LEGEND_H + HEADER_H + self.map.steps.len() as i32 * CELL_H + 20;
        (w.max(640) as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        root.fill(&WHITE).map_err(err)?;
        let (legend, grid) = root.split_vertically(LEGEND_H);
        let entries: Vec<(String, RGBColor)> = StepState::ALL
            .iter()
            .map(|s| (s.label().to_string(), state_color(*s)))
            .collect();
        draw_legend(&legend, &entries)?;
        let vertical = text_style(12).transform(FontTransform::Rotate270);
        let mut previous_strategy = None;
        for (c, column) in self.map.columns.iter().enumerate() {
            let x = LABEL_W + c as i32 * CELL_W;
            if previous_strategy != Some(&column.strategy) {
                previous_strategy = Some(&column.strategy);
                grid.draw(&Text::new(
                    short(column.strategy.name(), 22),
                    (x + 2, 4),
                    text_style(13),
                ))
                .map_err(err)?;
                grid.draw(&PathElement::new(
                    vec![(x, 0), (x, HEADER_H + self.map.steps.len() as i32 * CELL_H)],
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
            }
            grid.draw(&Text::new(
                short(column.pipeline_run.as_str(), 14),
                (x + CELL_W / 2 - 6, HEADER_H - 6),
                vertical.clone(),
            ))
            .map_err(err)?;
        }
        for (r, step) in self.map.steps.iter().enumerate() {
            let y = HEADER_H + r as i32 * CELL_H;
            let label = format!("{:>2} {}", step.step, step.instruction);
            grid.draw(&Text::new(short(&label, 44), (6, y + 5), text_style(13)))
                .map_err(err)?;
            for (c, cell) in self.map.cells[r].iter().enumerate() {
                let x = LABEL_W + c as i32 * CELL_W;
                let rect = [(x + 1, y + 1), (x + CELL_W - 1, y + CELL_H - 1)];
                grid.draw(&Rectangle::new(rect, state_color(cell.majority).filled()))
                    .map_err(err)?;
                grid.draw(&Rectangle::new(
                    rect,
                    RGBColor(0x80, 0x80, 0x80).stroke_width(1),
                ))
                .map_err(err)?;
                if let Some(ms) = cell.median_ms {
                    let text = if ms < 1000.0 {
                        format!("{ms:.0}ms")
                    } else {
                        format!("{:.1}s", ms / 1000.0)
                    };
                    grid.draw(&Text::new(text, (x + 4, y + 6), text_style(11)))
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::data::Spread;

    fn cell(values: &[f64], failed: usize) -> TimeCell {
        TimeCell {
            infrastructure_failed: 0,
            wall_ms: Spread::of(values.iter().copied()),
            ok: values.len(),
            failed,
        }
    }

    /// The text elements of an SVG, as plotters writes them (`<text ...>\nTEXT\n</text>`).
    fn texts(svg: &str) -> Vec<String> {
        svg.split("</text>")
            .filter_map(|chunk| chunk.rsplit_once(">\n").map(|(_, t)| t.trim().to_string()))
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn draws_to_svg_and_png<C: Chart>(chart: &C) -> String {
        let dir = tempfile::tempdir().unwrap();
        let svg = render(chart, dir.path()).unwrap();
        let png = std::fs::read(dir.path().join(format!("{}.png", C::NAME))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "a PNG file was written");
        assert!(svg.starts_with("<svg"), "SVG text is returned for inlining");
        svg
    }

    #[test]
    fn one_iteration_draws_bars_without_whiskers() {
        let chart = TimeChart {
            pipeline: vec!["cold".into(), "no-change".into()],
            strategies: vec![Strategy::named("ephemeral-dind"), Strategy::named("shared-dind")],
            cells: vec![
                vec![cell(&[30_000.0], 0), cell(&[5_000.0], 0)],
                vec![cell(&[31_000.0], 0), cell(&[29_000.0], 0)],
            ],
        };
        let bars = chart.bars();
        assert_eq!(bars.len(), 4);
        assert!(
            bars.iter().all(|b| b.whisker.is_none()),
            "no spread, no whisker"
        );
        assert_eq!(bars[0].median_s, 30.0);
        assert!(chart.y_max_s() > 31.0);
        draws_to_svg_and_png(&chart);
    }

    #[test]
    fn spread_across_iterations_draws_a_whisker_from_min_to_max() {
        let chart = TimeChart {
            pipeline: vec!["cold".into()],
            strategies: vec![Strategy::named("ephemeral-dind")],
            cells: vec![vec![cell(&[10_000.0, 12_000.0, 20_000.0], 0)]],
        };
        let bar = chart.bars()[0];
        assert_eq!(bar.median_s, 12.0);
        assert_eq!(bar.whisker, Some((10.0, 20.0)));
        assert!(chart.y_max_s() >= 20.0, "the whisker fits in the chart");
    }

    #[test]
    fn a_strategy_whose_every_job_failed_gets_a_note_and_no_bar() {
        let chart = TimeChart {
            pipeline: vec!["cold".into(), "no-change".into()],
            strategies: vec![Strategy::named("shared-dind"), Strategy::named("registry-final")],
            cells: vec![
                vec![cell(&[1_000.0, 2_000.0], 0), cell(&[1_500.0, 1_700.0], 0)],
                vec![cell(&[], 2), cell(&[], 2)],
            ],
        };
        assert!(chart.bars().iter().all(|b| b.strategy == 0));
        assert_eq!(chart.failures(), vec![(1, 0, 2), (1, 1, 2)]);
        let svg = draws_to_svg_and_png(&chart);
        let texts = texts(&svg);
        assert_eq!(texts.iter().filter(|t| *t == "all 2 failed").count(), 2);
        assert!(
            texts.iter().any(|t| t == "registry-final"),
            "the failed strategy stays in the legend"
        );
    }

    #[test]
    fn every_job_failed_everywhere_still_draws_an_axis() {
        let chart = TimeChart {
            pipeline: vec!["cold".into()],
            strategies: vec![Strategy::named("registry-final")],
            cells: vec![vec![cell(&[], 3)]],
        };
        assert!(chart.bars().is_empty());
        assert_eq!(chart.y_max_s(), 1.0, "an empty chart keeps a valid range");
        draws_to_svg_and_png(&chart);
    }

    #[test]
    fn a_pipeline_with_a_single_run_is_one_group() {
        let chart = TimeChart {
            pipeline: vec!["cold".into()],
            strategies: vec![Strategy::named("ephemeral-dind"), Strategy::named("shared-dind"), Strategy::named("daemonless")],
            cells: vec![
                vec![cell(&[3_000.0], 0)],
                vec![cell(&[4_000.0, 5_000.0], 0)],
                vec![cell(&[2_000.0], 0)],
            ],
        };
        let bars = chart.bars();
        assert_eq!(bars.len(), 3);
        for b in &bars {
            assert!(
                b.x.0 >= 0.0 && b.x.1 <= 1.0 && b.x.0 < b.x.1,
                "inside the one group: {b:?}"
            );
        }
        assert!(
            bars.windows(2).all(|w| w[0].x.1 <= w[1].x.0),
            "bars do not overlap"
        );
        let svg = draws_to_svg_and_png(&chart);
        assert!(
            texts(&svg).iter().any(|t| t == "cold"),
            "the run is labelled"
        );
    }

    #[test]
    fn phases_skip_missing_segments_and_mark_a_strategy_with_none() {
        let chart = PhasesChart {
            strategies: vec![Strategy::named("ephemeral-dind"), Strategy::named("shared-dind")],
            totals_ms: vec![[Some(1000.0), None, None, Some(5000.0), None, Some(500.0), None, None], [None; 8]],
        };
        assert_eq!(
            chart.segments(),
            vec![(0, 0, 0.0, 1.0), (0, 3, 1.0, 6.0), (0, 5, 6.0, 6.5)],
            "stacked in phase order (provision, build, push); the missing pull and cache phases are not drawn as zero"
        );
        let svg = draws_to_svg_and_png(&chart);
        assert_eq!(texts(&svg).iter().filter(|t| *t == "n/a").count(), 1);
    }

    #[test]
    fn cost_marks_missing_figures_as_not_available() {
        let chart = CostChart {
            strategies: vec![Strategy::named("ephemeral-dind")],
            bytes: vec![[Some(2e6), None, Some(5e7)]],
        };
        let svg = draws_to_svg_and_png(&chart);
        assert_eq!(texts(&svg).iter().filter(|t| *t == "n/a").count(), 1);
    }
}
