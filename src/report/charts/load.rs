//! The "under load" chart: p50 and p95 job time against the concurrency level, per strategy, with the
//! physical reference (the level-1 p50 spread over the host's cores) each strategy would keep to if it
//! scaled perfectly.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, legend_on_top, strategy_color, text_style, y_top, Chart, DrawError};
use crate::results::load::LevelFigures;
use crate::strategy::Strategy;

/// The figures of every strategy at every level, in run.json's strategy order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadChart {
    pub strategies: Vec<Strategy>,
    pub levels: Vec<u32>,
    pub figures: Vec<LevelFigures>,
}

/// Which line of a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    P50,
    P95,
    Reference,
}

impl LoadChart {
    pub fn new(strategies: Vec<Strategy>, figures: Vec<LevelFigures>) -> Self {
        let mut levels: Vec<u32> = figures.iter().map(|f| f.level).collect();
        levels.sort_unstable();
        levels.dedup();
        LoadChart { strategies, levels, figures }
    }

    /// The points of one line, x the level's position (1-based), y seconds; a level without the figure is
    /// left out (the line joins the levels that have it).
    pub fn points(&self, strategy: Strategy, line: Line) -> Vec<(f64, f64)> {
        self.levels
            .iter()
            .enumerate()
            .filter_map(|(i, level)| {
                let f = self.figures.iter().find(|f| f.strategy == strategy && f.level == *level)?;
                let ms = match line {
                    Line::P50 => f.p50_ms.map(|v| v as f64),
                    Line::P95 => f.p95_ms.map(|v| v as f64),
                    Line::Reference => f.reference_ms,
                }?;
                Some((i as f64 + 1.0, ms / 1000.0))
            })
            .collect()
    }

    fn y_max_s(&self) -> f64 {
        let top = self
            .strategies
            .iter()
            .flat_map(|s| [Line::P50, Line::P95, Line::Reference].map(|l| self.points(*s, l)))
            .flatten()
            .map(|(_, y)| y)
            .fold(0.0, f64::max);
        y_top(top)
    }
}

impl Chart for LoadChart {
    const NAME: &'static str = "under-load";

    fn size(&self) -> (u32, u32) {
        (900, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let entries: Vec<(String, RGBColor)> = self.strategies.iter().enumerate().map(|(i, s)| (s.to_string(), strategy_color(i))).collect();
        let plot = legend_on_top(root, 54, &entries)?;
        let n = self.levels.len();
        let levels = self.levels.clone();
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..(n as f64 + 0.5), 0.0..self.y_max_s())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round() as usize;
                if (x - x.round()).abs() < 1e-6 && i >= 1 && i <= levels.len() { levels[i - 1].to_string() } else { String::new() }
            })
            .x_label_style(text_style(14))
            .y_label_style(text_style(13))
            .x_desc("pipelines at once (concurrency)")
            .y_desc("job wall time, s (solid p50, dashed p95, dotted: perfect scaling)")
            .axis_desc_style(text_style(14))
            .draw()
            .map_err(err)?;
        for (i, &strategy) in self.strategies.iter().enumerate() {
            let color = strategy_color(i);
            let p50 = self.points(strategy, Line::P50);
            chart.draw_series(LineSeries::new(p50.clone(), color.stroke_width(3))).map_err(err)?;
            chart.draw_series(p50.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(err)?;
            chart.draw_series(DashedLineSeries::new(self.points(strategy, Line::P95), 8, 5, color.stroke_width(2))).map_err(err)?;
            chart.draw_series(DashedLineSeries::new(self.points(strategy, Line::Reference), 2, 4, color.stroke_width(1))).map_err(err)?;
        }
        Ok(())
    }
}
