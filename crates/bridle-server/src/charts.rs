//! Charts as inline SVG, drawn on the server by `charts-rs` (pure Rust,
//! text measured with the font the crate bundles, no system fonts): the
//! compliance report's HTML uses them, and a web console can. The same
//! input gives the same SVG, byte for byte. A chart with nothing to show is
//! `None`, so the page says so in words instead of drawing empty axes.

use charts_rs::{BarChart, HorizontalBarChart, Series, THEME_LIGHT};

/// A chart the library could not draw.
#[derive(Debug, thiserror::Error)]
#[error("a chart could not be drawn: {0}")]
pub struct ChartError(String);

const WIDTH: f32 = 640.0;
const HEIGHT: f32 = 300.0;

/// Whether any value is worth drawing.
fn empty<'a>(values: impl IntoIterator<Item = &'a f64>) -> bool {
    values.into_iter().all(|v| *v <= 0.0)
}

fn data(values: &[f64]) -> Vec<f32> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "counts and seconds far below f32's range; the chart draws at pixel precision"
    )]
    values.iter().map(|v| *v as f32).collect()
}

/// Bars per category, the series stacked (e.g. decisions per day by
/// outcome). `series`: name and one value per category.
pub fn stacked_bars(
    title: &str,
    categories: &[String],
    series: &[(&str, Vec<f64>)],
) -> Result<Option<String>, ChartError> {
    if categories.is_empty() || empty(series.iter().flat_map(|(_, v)| v)) {
        return Ok(None);
    }
    let list: Vec<Series> = series
        .iter()
        .map(|(name, values)| {
            let mut s: Series = (*name, data(values)).into();
            s.stack = Some("all".into());
            s
        })
        .collect();
    let mut chart = BarChart::new_with_theme(list, categories.to_vec(), THEME_LIGHT);
    chart.title.text = title.to_owned();
    chart.width = WIDTH;
    chart.height = HEIGHT;
    chart.svg().map(Some).map_err(|e| ChartError(e.to_string()))
}

/// One bar per category (e.g. approvals per latency bucket).
pub fn bars(
    title: &str,
    series_name: &str,
    items: &[(String, f64)],
) -> Result<Option<String>, ChartError> {
    if empty(items.iter().map(|(_, v)| v)) {
        return Ok(None);
    }
    let (labels, values): (Vec<String>, Vec<f64>) = items.iter().cloned().unzip();
    let mut chart = BarChart::new_with_theme(
        vec![(series_name, data(&values)).into()],
        labels,
        THEME_LIGHT,
    );
    chart.title.text = title.to_owned();
    chart.width = WIDTH;
    chart.height = HEIGHT;
    chart.legend.show = Some(false);
    if let Some(s) = chart.series_list.first_mut() {
        s.label_show = true;
    }
    chart.svg().map(Some).map_err(|e| ChartError(e.to_string()))
}

/// One horizontal bar per category, largest first (e.g. denials by
/// reason), so long labels read along the axis.
pub fn ranked_bars(
    title: &str,
    series_name: &str,
    items: &[(String, f64)],
) -> Result<Option<String>, ChartError> {
    if empty(items.iter().map(|(_, v)| v)) {
        return Ok(None);
    }
    let mut items = items.to_vec();
    // The chart draws its first category at the bottom: ascending puts the
    // largest on top. Ties keep label order, so the output is stable.
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    let (labels, values): (Vec<String>, Vec<f64>) = items.into_iter().unzip();
    let mut chart = HorizontalBarChart::new_with_theme(
        vec![(series_name, data(&values)).into()],
        labels,
        THEME_LIGHT,
    );
    chart.title.text = title.to_owned();
    chart.width = WIDTH;
    chart.height = HEIGHT;
    chart.legend.show = Some(false);
    if let Some(s) = chart.series_list.first_mut() {
        s.label_show = true;
    }
    chart.svg().map(Some).map_err(|e| ChartError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_the_same_each_time_and_none_when_empty() {
        let days: Vec<String> = ["05-01", "05-02"].map(String::from).to_vec();
        let series = [("allow", vec![3.0, 1.0]), ("deny", vec![0.0, 2.0])];
        let a = stacked_bars("Decisions per day", &days, &series).unwrap();
        let b = stacked_bars("Decisions per day", &days, &series).unwrap();
        let svg = a.clone().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Decisions per day"));
        assert_eq!(a, b);
        assert_eq!(
            stacked_bars("x", &days, &[("allow", vec![0.0, 0.0])]).unwrap(),
            None
        );
        let reasons = [("not_granted".to_owned(), 2.0), ("a <b>".to_owned(), 1.0)];
        let svg = ranked_bars("Denials", "denials", &reasons)
            .unwrap()
            .unwrap();
        assert!(svg.contains("a &lt;b&gt;"), "labels are escaped: {svg}");
        assert_eq!(bars("x", "y", &[]).unwrap(), None);
    }
}
