//! PNG charts for `t2s demo` and `t2s similarity`: line charts (training curves), grouped per-class bar charts (IoU
//! by method) and labelled scatter plots (IoU against prototype similarity).
//!
//! plotters draws into an RGB buffer that `png` writes out. Text uses the DejaVu Sans embedded from
//! `assets/fonts/` through plotters' `ab_glyph` feature, so nothing needs system fonts or libraries at run time.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, ensure, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The family every text style here names; the embedded font is registered under it.
const FONT: &str = "sans-serif";
const FONT_TTF: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

const LINE_SIZE: (u32, u32) = (900, 500);
const BAR_HEIGHT: u32 = 560;
const BAR_PX_PER_CATEGORY: u32 = 60;
const BAR_MIN_WIDTH: u32 = 800;

/// Fixed palette (Tableau 10): series / group `i` is always drawn in `PALETTE[i % 10]`.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Writes a line chart (about 900×500) to `path`: one coloured line with point markers per series and a legend
/// with the series names. Non-finite points are skipped; with nothing left to draw it still writes a chart that
/// says "no data". The y axis runs from min(0, ymin) to ymax plus 5% headroom.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    render_png(path, LINE_SIZE, |root| draw_line_chart(root, title, x_label, y_label, series))
        .with_context(|| format!("writing line chart {}", path.display()))?;
    Ok(())
}

/// One series of a [`scatter_chart`]: points `(x, y)` with a text label each (may be empty).
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterSeries {
    pub name: String,
    pub points: Vec<(f64, f64, String)>,
}

/// Writes a scatter plot (about 900×500) to `path`: one colour and marker shape (circle, triangle, square, cross,
/// in turn) per series, a legend with the series names, and each point's label in small text beside it.
/// Non-finite points are skipped ("no data" when none is left). Both axes span the data with 5% margins; the y axis
/// starts at min(0, ymin).
pub fn scatter_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[ScatterSeries]) -> Result<()> {
    render_png(path, LINE_SIZE, |root| draw_scatter_chart(root, title, x_label, y_label, series))
        .with_context(|| format!("writing scatter chart {}", path.display()))?;
    Ok(())
}

/// Writes a grouped bar chart to `path`: for each category (class) one bar per group (method), coloured by the
/// group's index, with a legend of group names and the category names under the x axis. Values are percentages
/// (the y axis is 0–100); non-finite values leave their bar out. Each group needs one value per category.
pub fn grouped_bar_chart(path: &Path, title: &str, y_label: &str, categories: &[String], groups: &[(String, Vec<f64>)]) -> Result<()> {
    let size = (bar_chart_width(categories.len()), BAR_HEIGHT);
    render_png(path, size, |root| draw_grouped_bar_chart(root, title, y_label, categories, groups))
        .with_context(|| format!("writing bar chart {}", path.display()))?;
    Ok(())
}

fn bar_chart_width(categories: usize) -> u32 {
    (BAR_PX_PER_CATEGORY * categories as u32 + 160).max(BAR_MIN_WIDTH)
}

type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Registers the embedded font with plotters, once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    ensure!(ok, "the embedded DejaVu Sans font could not be loaded");
    Ok(())
}

/// Draws on a white `size` canvas with `draw`, then writes it to `path` as an 8-bit RGB PNG.
fn render_png<T>(path: &Path, size: (u32, u32), draw: impl FnOnce(&Root<'_>) -> Result<T>) -> Result<T> {
    ensure_font()?;
    let (w, h) = size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    let out = {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE)?;
        let out = draw(&root)?;
        root.present()?;
        out
    };
    let file = File::create(path).context("creating the file")?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing the PNG header")?;
    writer.write_image_data(&rgb).context("writing the PNG data")?;
    writer.finish().context("finishing the PNG")?;
    Ok(out)
}

/// Height of the label band above a [`labelled_grid`].
pub const GRID_HEADER: u32 = 22;

/// Tiles in rows with 2-pixel white gaps, under a white band that names each column (centred over
/// it, shrunk to the column's width when long).
pub fn labelled_grid(columns: &[String], rows: &[Vec<image::RgbImage>]) -> Result<image::RgbImage> {
    ensure_font()?;
    let gap = 2u32;
    let (tw, th) = rows.first().and_then(|r| r.first()).map(|t| t.dimensions()).unwrap_or((1, 1));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(columns.len()).max(1) as u32;
    let width = cols * (tw + gap);
    let mut band = vec![0u8; width as usize * GRID_HEADER as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut band, (width, GRID_HEADER)).into_drawing_area();
        root.fill(&WHITE)?;
        for (c, name) in columns.iter().enumerate() {
            // DejaVu Sans at size s is about 0.55·s pixels per character.
            let size = (14.0f64).min(tw as f64 / (0.58 * name.chars().count().max(1) as f64)).max(6.0);
            let style = (FONT, size).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
            root.draw_text(name, &style, ((c as u32 * (tw + gap) + tw / 2) as i32, (GRID_HEADER / 2) as i32))?;
        }
        root.present()?;
    }
    let header = image::RgbImage::from_raw(width, GRID_HEADER, band).context("the label band's buffer")?;
    let mut out = image::RgbImage::from_pixel(width, GRID_HEADER + rows.len() as u32 * (th + gap), image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &header, 0, 0);
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            image::imageops::replace(&mut out, tile, (c as u32 * (tw + gap)) as i64, (GRID_HEADER + r as u32 * (th + gap)) as i64);
        }
    }
    Ok(out)
}

/// Draws the title at the top and a legend row (or rows) under it; returns the area left for the chart.
/// `swatch` draws one legend entry's marker centred at the given point.
fn title_and_legend<'a>(
    root: &Root<'a>,
    title: &str,
    names: &[&str],
    swatch: impl Fn(&Root<'a>, (i32, i32), usize) -> Result<()>,
) -> Result<Root<'a>> {
    let area = root.titled(title, (FONT, 22))?;
    if names.is_empty() {
        return Ok(area);
    }
    let style = (FONT, 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let width = area.dim_in_pixel().0 as i32;
    let (row_h, margin, gap, swatch_w) = (22, 15, 22, 30);
    // Lay the entries out left to right, wrapping to a new row when one would cross the right edge.
    let mut places = Vec::with_capacity(names.len());
    let (mut x, mut row) = (margin, 0);
    for name in names {
        let text_w = area.estimate_text_size(name, &style)?.0 as i32;
        let entry_w = swatch_w + 6 + text_w;
        if x > margin && x + entry_w > width - margin {
            (x, row) = (margin, row + 1);
        }
        places.push((x, row));
        x += entry_w + gap;
    }
    let rows = places.last().map_or(0, |p| p.1) + 1;
    let (legend, rest) = area.split_vertically(rows * row_h + 8);
    for (i, (name, &(x, row))) in names.iter().zip(&places).enumerate() {
        let y = row * row_h + row_h / 2;
        swatch(&legend, (x + swatch_w / 2, y), i)?;
        legend.draw(&Text::new(name.to_string(), (x + swatch_w + 6, y), style.clone()))?;
    }
    Ok(rest)
}

/// Draws "no data" in the middle of `area`.
fn no_data(area: &Root<'_>) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let style = (FONT, 28).into_font().color(&BLACK.mix(0.6)).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

/// A tick label without trailing zeros ("2", "0.5", "1200"), so whole numbers don't read "100.0".
fn tick(v: &f64) -> String {
    let fixed = format!("{v:.6}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "0" | "-0" if *v != 0.0 => format!("{v:.1e}"),
        "-0" => "0".to_string(),
        _ => trimmed.to_string(),
    }
}

/// `lo..hi` widened to a non-empty range when all values coincide.
fn nonempty(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        (lo - pad, hi + pad)
    }
}

/// A chart on `area` over `x` × `y` with the shared mesh style and axis titles drawn.
fn axes<'a, 'b>(
    area: &'a Root<'b>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_label: &str,
    y_label: &str,
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>>
{
    let mut chart = ChartBuilder::on(area).margin(15).x_label_area_size(45).y_label_area_size(70).build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.15))
        .draw()?;
    Ok(chart)
}

/// The line chart proper; returns the plotting area's pixel ranges (x, y) for tests.
fn draw_line_chart(
    root: &Root<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(std::ops::Range<i32>, std::ops::Range<i32>)> {
    let finite: Vec<Vec<(f64, f64)>> =
        series.iter().map(|s| s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect()).collect();
    let all = || finite.iter().flatten();
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let area = title_and_legend(root, title, &names, |legend, (x, y), i| {
        let style = palette(i).stroke_width(2);
        legend.draw(&PathElement::new(vec![(x - 12, y), (x + 12, y)], style))?;
        legend.draw(&Circle::new((x, y), 3, palette(i).filled()))?;
        Ok(())
    })?;

    let has_data = all().next().is_some();
    let ((x0, x1), (y0, y1)) = if has_data {
        let (xmin, xmax) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let (ymin, ymax) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let (ylo, yhi) = nonempty(ymin.min(0.0), ymax);
        (nonempty(xmin, xmax), (ylo, yhi + 0.05 * (yhi - ylo)))
    } else {
        ((0.0, 1.0), (0.0, 1.0))
    };

    let mut chart = axes(&area, x0..x1, y0..y1, x_label, y_label)?;
    for (i, points) in finite.iter().enumerate() {
        let color = palette(i);
        chart.draw_series(LineSeries::new(points.iter().copied(), color.filled().stroke_width(2)).point_size(3))?;
    }
    if !has_data {
        no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    Ok(chart.plotting_area().get_pixel_range())
}

/// Draws series `i`'s marker centred at pixel `at`: a circle, triangle, square or cross by `i`.
fn marker<'a>(area: &Root<'a>, at: (i32, i32), i: usize) -> Result<()> {
    let (x, y, r) = (at.0, at.1, 5);
    let style = palette(i).filled();
    match i % 4 {
        0 => area.draw(&Circle::new(at, r, style))?,
        1 => area.draw(&Polygon::new(vec![(x, y - r - 1), (x - r, y + r), (x + r, y + r)], style))?,
        2 => area.draw(&Rectangle::new([(x - r + 1, y - r + 1), (x + r - 1, y + r - 1)], style))?,
        _ => {
            let stroke = palette(i).stroke_width(3);
            area.draw(&PathElement::new(vec![(x - r, y - r), (x + r, y + r)], stroke))?;
            area.draw(&PathElement::new(vec![(x - r, y + r), (x + r, y - r)], stroke))?;
        }
    }
    Ok(())
}

/// Each drawn point's pixel position, `[series][point]` (`None` where skipped); only the tests read it.
type PointPixels = Vec<Vec<Option<(i32, i32)>>>;

/// The scatter plot proper.
fn draw_scatter_chart(root: &Root<'_>, title: &str, x_label: &str, y_label: &str, series: &[ScatterSeries]) -> Result<PointPixels> {
    let finite = |p: &&(f64, f64, String)| p.0.is_finite() && p.1.is_finite();
    let all = || series.iter().flat_map(|s| s.points.iter().filter(finite));
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let area = title_and_legend(root, title, &names, marker)?;
    let has_data = all().next().is_some();
    let ((x0, x1), (y0, y1)) = if has_data {
        let (xmin, xmax) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let (ymin, ymax) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let ((xlo, xhi), (ylo, yhi)) = (nonempty(xmin, xmax), nonempty(ymin.min(0.0), ymax));
        let (dx, dy) = (0.05 * (xhi - xlo), 0.05 * (yhi - ylo));
        ((xlo - dx, xhi + dx), (ylo, yhi + dy))
    } else {
        ((0.0, 1.0), (0.0, 1.0))
    };
    let chart = axes(&area, x0..x1, y0..y1, x_label, y_label)?;
    let text = (FONT, 11).into_font().color(&BLACK.mix(0.8)).pos(Pos::new(HPos::Left, VPos::Center));
    let mut drawn = Vec::with_capacity(series.len());
    for (i, s) in series.iter().enumerate() {
        let mut at = Vec::with_capacity(s.points.len());
        for p in &s.points {
            if !finite(&p) {
                at.push(None);
                continue;
            }
            let px = chart.backend_coord(&(p.0, p.1));
            marker(root, px, i)?;
            if !p.2.is_empty() {
                root.draw(&Text::new(p.2.clone(), (px.0 + 7, px.1), text.clone()))?;
            }
            at.push(Some(px));
        }
        drawn.push(at);
    }
    if !has_data {
        no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    Ok(drawn)
}

/// A bar's pixel rectangle: (left, top), (right, bottom).
type PixelRect = ((i32, i32), (i32, i32));

/// Where a bar chart's parts ended up; only the tests read it.
#[cfg_attr(not(test), allow(dead_code))]
struct BarLayout {
    /// Pixel rows of the plotting area (0% at the end, 100% at the start).
    plot_rows: std::ops::Range<i32>,
    /// Each drawn bar's pixel rectangle, `[category][group]`.
    bars: Vec<Vec<Option<PixelRect>>>,
}

/// The bar chart proper.
fn draw_grouped_bar_chart(
    root: &Root<'_>,
    title: &str,
    y_label: &str,
    categories: &[String],
    groups: &[(String, Vec<f64>)],
) -> Result<BarLayout> {
    for (name, values) in groups {
        if values.len() != categories.len() {
            bail!("group {name:?} has {} values for {} categories", values.len(), categories.len());
        }
    }
    let names: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
    let area = title_and_legend(root, title, &names, |legend, (x, y), i| {
        legend.draw(&Rectangle::new([(x - 7, y - 7), (x + 7, y + 7)], palette(i).filled()))?;
        Ok(())
    })?;

    let n = categories.len();
    let mut chart = ChartBuilder::on(&area)
        .margin(15)
        .x_label_area_size(110)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n.max(1) as f64, 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(11)
        .y_label_formatter(&tick)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.15))
        .draw()?;

    // Category `c` spans [c, c + 1]; its bars share the middle 80%.
    let bar_w = 0.8 / groups.len().max(1) as f64;
    let mut rects = vec![vec![None; groups.len()]; n];
    for (g, (_, values)) in groups.iter().enumerate() {
        let color = palette(g);
        let mut bars = Vec::with_capacity(n);
        for (c, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            let (left, top) = (c as f64 + 0.1 + g as f64 * bar_w, v.clamp(0.0, 100.0));
            rects[c][g] = Some((chart.backend_coord(&(left, top)), chart.backend_coord(&(left + bar_w, 0.0))));
            bars.push(Rectangle::new([(left, 0.0), (left + bar_w, top)], color.filled()));
        }
        chart.draw_series(bars)?;
    }

    // Category names, rotated to read downwards, centred under their bars.
    let style = (FONT, 13).into_font().transform(FontTransform::Rotate90).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (c, name) in categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
        root.draw(&Text::new(name.clone(), (x, y + 8), style.clone()))?;
    }
    if n == 0 || groups.is_empty() {
        no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    Ok(BarLayout { plot_rows: chart.plotting_area().get_pixel_range().1, bars: rects })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(c: RGBColor) -> image::Rgb<u8> {
        image::Rgb([c.0, c.1, c.2])
    }

    fn load(path: &Path) -> image::RgbImage {
        image::open(path).unwrap().to_rgb8()
    }

    fn render<T>(size: (u32, u32), draw: impl FnOnce(&Root<'_>) -> Result<T>) -> (T, image::RgbImage) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        let out = render_png(&path, size, draw).unwrap();
        (out, load(&path))
    }

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series { name: name.into(), points: points.to_vec() }
    }

    #[test]
    fn grid_columns_are_labelled_above_their_tiles() {
        let red = image::RgbImage::from_pixel(60, 30, image::Rgb([200, 0, 0]));
        let blue = image::RgbImage::from_pixel(60, 30, image::Rgb([0, 0, 200]));
        let names = ["image".to_string(), "a much longer column name".to_string()];
        let grid = labelled_grid(&names, &[vec![red.clone(), blue.clone()], vec![blue, red]]).unwrap();
        assert_eq!(grid.dimensions(), (2 * 62, GRID_HEADER + 2 * 32));
        // Tiles start under the band: row 0 column 1 is blue, row 1 column 0 is blue.
        assert_eq!(grid.get_pixel(62 + 5, GRID_HEADER + 5).0, [0, 0, 200]);
        assert_eq!(grid.get_pixel(5, GRID_HEADER + 32 + 5).0, [0, 0, 200]);
        // Each column's label is drawn (dark pixels) inside its own part of the band.
        for c in 0..2u32 {
            let ink = (c * 62..c * 62 + 60)
                .flat_map(|x| (0..GRID_HEADER).map(move |y| (x, y)))
                .filter(|&(x, y)| grid.get_pixel(x, y).0.iter().all(|&v| v < 128))
                .count();
            assert!(ink > 10, "column {c}: {ink} dark pixels");
        }
    }

    #[test]
    fn line_chart_writes_png_of_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        line_chart(&path, "loss", "iteration", "loss", &[series("train", &[(0.0, 2.0), (10.0, 1.0)])]).unwrap();
        assert_eq!(load(&path).dimensions(), LINE_SIZE);
    }

    #[test]
    fn line_chart_draws_each_series_in_its_colour_where_its_data_is() {
        // "up" rises across the plot and "down" falls, so left of the middle "down" is above "up" and right of it
        // below; the NaN point must be skipped, not break the chart.
        let rising: Vec<_> = (0..=10).map(|i| (i as f64, i as f64)).collect();
        let falling: Vec<_> = (0..=10).map(|i| (i as f64, if i == 5 { f64::NAN } else { 10.0 - i as f64 })).collect();
        let data = [series("up", &rising), series("down", &falling)];
        let ((xs, ys), img) = render(LINE_SIZE, |root| draw_line_chart(root, "t", "x", "y", &data));
        assert_eq!(img.dimensions(), LINE_SIZE);

        // Mean row of a colour's pixels in a band of columns of the plotting area, and how many there are.
        let rows_in = |color: RGBColor, from: f64, to: f64| {
            let width = (xs.end - xs.start) as f64;
            let (c0, c1) = (xs.start + (width * from) as i32, xs.start + (width * to) as i32);
            let rows: Vec<f64> = (c0..c1)
                .flat_map(|x| (ys.start..ys.end).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x as u32, y as u32) == &rgb(color))
                .map(|(_, y)| y as f64)
                .collect();
            (rows.iter().sum::<f64>() / rows.len().max(1) as f64, rows.len())
        };
        let (up, down) = (palette(0), palette(1));
        for band in [(0.0, 0.1), (0.3, 0.4), (0.6, 0.7), (0.9, 1.0)] {
            let ((_, n_up), (_, n_down)) = (rows_in(up, band.0, band.1), rows_in(down, band.0, band.1));
            assert!(n_up > 50 && n_down > 50, "band {band:?}: {n_up} / {n_down} pixels of the series colours");
        }
        let (left_up, left_down) = (rows_in(up, 0.05, 0.3).0, rows_in(down, 0.05, 0.3).0);
        let (right_up, right_down) = (rows_in(up, 0.7, 0.95).0, rows_in(down, 0.7, 0.95).0);
        assert!(left_up > left_down + 100.0, "left: up at row {left_up}, down at row {left_down}");
        assert!(right_up + 100.0 < right_down, "right: up at row {right_up}, down at row {right_down}");
        // y starts at 0: the lowest points sit near the bottom of the plotting area, the highest near the top
        // (5% headroom).
        let h = (ys.end - ys.start) as f64;
        let (first_up, _) = rows_in(up, 0.0, 0.02);
        assert!((first_up - ys.end as f64).abs() < 0.05 * h, "first point of up at row {first_up}, bottom at {}", ys.end);
        let (last_up, _) = rows_in(up, 0.98, 1.0);
        assert!((last_up - (ys.start as f64 + h * 0.05 / 1.05)).abs() < 0.05 * h, "last point of up at row {last_up}");
    }

    #[test]
    fn empty_or_unplottable_series_still_write_a_chart() {
        let dir = tempfile::tempdir().unwrap();
        for (i, data) in [
            vec![],
            vec![series("nan", &[(f64::NAN, 1.0), (1.0, f64::INFINITY)]), series("empty", &[])],
            vec![series("one", &[(3.0, 0.5)])],
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("{i}.png"));
            line_chart(&path, "nothing", "x", "y", data).unwrap();
            assert_eq!(load(&path).dimensions(), LINE_SIZE);
        }
        // The single point is drawn as a marker.
        let img = load(&dir.path().join("2.png"));
        assert!(img.pixels().filter(|p| **p == rgb(palette(0))).count() > 30);
    }

    #[test]
    fn bar_chart_bars_have_their_group_colour_and_height() {
        let categories: Vec<String> = ["road", "traffic light", "bicycle"].iter().map(|s| s.to_string()).collect();
        let groups = vec![("source only".to_string(), vec![50.0, 100.0, 20.0]), ("T2S".to_string(), vec![80.0, f64::NAN, 40.0])];
        let size = (bar_chart_width(categories.len()), BAR_HEIGHT);
        let (layout, img) = render(size, |root| draw_grouped_bar_chart(root, "IoU", "IoU (%)", &categories, &groups));
        let rects = &layout.bars;
        assert_eq!(img.dimensions(), (BAR_MIN_WIDTH, BAR_HEIGHT));
        assert!(rects[1][1].is_none(), "the NaN bar is left out");

        let px = |(x, y): (i32, i32)| *img.get_pixel(x as u32, y as u32);
        for (c, row) in rects.iter().enumerate() {
            for (g, rect) in row.iter().enumerate() {
                let Some(((l, t), (r, b))) = *rect else { continue };
                let color = rgb(palette(g));
                let mid = ((l + r) / 2, (t + b) / 2);
                assert_eq!(px(mid), color, "interior of bar {c}/{g}");
                assert_eq!(px(((l + r) / 2, b - 2)), color, "bottom of bar {c}/{g}");
                assert_eq!(px(((l + r) / 2, t + 2)), color, "top of bar {c}/{g}");
                if t > 40 {
                    assert_ne!(px(((l + r) / 2, t - 4)), color, "above bar {c}/{g}");
                }
            }
        }
        // In the middle column of the 100% bar, its colour runs from the x axis to the top of the plotting area.
        let ((l, _), (r, _)) = rects[1][0].unwrap();
        let column: Vec<i32> = layout.plot_rows.clone().filter(|&y| px(((l + r) / 2, y)) == rgb(palette(0))).collect();
        let (plot_top, plot_bottom) = (layout.plot_rows.start, layout.plot_rows.end);
        assert!(
            (column[0] - plot_top).abs() <= 2 && (column[column.len() - 1] - plot_bottom).abs() <= 2,
            "bar rows {}..={} vs plot rows {plot_top}..{plot_bottom}",
            column[0],
            column[column.len() - 1]
        );
        assert_eq!(column.len(), (column[column.len() - 1] - column[0] + 1) as usize, "the bar is solid");
        // Heights are proportional to the values: 50 is half of 100, 20 a fifth.
        let height = |c: usize, g: usize| {
            let ((_, t), (_, b)) = rects[c][g].unwrap();
            (b - t) as f64
        };
        assert!((height(0, 0) / height(1, 0) - 0.5).abs() < 0.02);
        assert!((height(2, 0) / height(1, 0) - 0.2).abs() < 0.02);
        // Bars go category by category, groups in order inside each.
        let left = |c: usize, g: usize| rects[c][g].unwrap().0 .0;
        assert!(left(0, 0) < left(0, 1) && left(0, 1) < left(1, 0) && left(1, 0) < left(2, 0) && left(2, 0) < left(2, 1));
    }

    #[test]
    fn bar_chart_width_grows_with_categories() {
        let categories: Vec<String> = (0..19).map(|i| format!("class {i}")).collect();
        let groups = vec![("a".to_string(), (0..19).map(|i| i as f64 * 5.0).collect())];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iou.png");
        grouped_bar_chart(&path, "per-class IoU", "IoU (%)", &categories, &groups).unwrap();
        let img = load(&path);
        assert_eq!(img.dimensions(), (60 * 19 + 160, BAR_HEIGHT));
        assert!(img.pixels().filter(|p| **p == rgb(palette(0))).count() > 1000);
    }

    #[test]
    fn bar_chart_rejects_mismatched_groups_and_handles_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let err = grouped_bar_chart(&path, "t", "y", &["a".into()], &[("g".into(), vec![1.0, 2.0])]).unwrap_err();
        assert!(format!("{err:#}").contains("bad.png"), "{err:#}");
        let path = dir.path().join("empty.png");
        grouped_bar_chart(&path, "t", "y", &[], &[]).unwrap();
        assert_eq!(load(&path).dimensions(), (BAR_MIN_WIDTH, BAR_HEIGHT));
    }

    #[test]
    fn scatter_chart_draws_markers_in_series_colours_where_the_points_are() {
        let label = |x: f64, y: f64, l: &str| (x, y, l.to_string());
        let data = [
            ScatterSeries { name: "a".into(), points: vec![label(0.2, 10.0, "road"), label(0.9, 80.0, ""), label(f64::NAN, 1.0, "x")] },
            ScatterSeries { name: "b".into(), points: vec![label(0.5, 40.0, "car")] },
        ];
        let (drawn, img) = render(LINE_SIZE, |root| draw_scatter_chart(root, "t", "cosine", "IoU (%)", &data));
        assert_eq!(img.dimensions(), LINE_SIZE);
        assert!(drawn[0][2].is_none(), "the NaN point is skipped");
        for (i, points) in drawn.iter().enumerate() {
            for &(x, y) in points.iter().flatten() {
                assert_eq!(*img.get_pixel(x as u32, y as u32), rgb(palette(i)), "marker of series {i} at {x},{y}");
            }
        }
        // Larger x is further right, larger y higher up.
        let ((x0, y0), (x1, y1)) = (drawn[0][0].unwrap(), drawn[0][1].unwrap());
        assert!(x1 > x0 + 100 && y1 + 100 < y0, "{drawn:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scatter.png");
        scatter_chart(&path, "t", "x", "y", &[]).unwrap();
        assert_eq!(load(&path).dimensions(), LINE_SIZE);
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        let labels: Vec<String> = [100.0, 2.5, 0.0, -0.0, 0.125, 1e-9, -3.0].iter().map(tick).collect();
        assert_eq!(labels, ["100", "2.5", "0", "0", "0.125", "1.0e-9", "-3"]);
    }

    #[test]
    fn unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("chart.png");
        let err = line_chart(&path, "t", "x", "y", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("missing/chart.png"), "{err:#}");
    }
}
