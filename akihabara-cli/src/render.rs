//! Text tables and SVG charts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use akihabara_core::fs::{Access, write_atomic};
use akihabara_core::sim::{SimReport, StrategyReport};
use akihabara_core::{Metagraph, Schedule, Slot, Tao, Uid};
use anyhow::Context;
use svg::Document;
use svg::node::element::{Line, Rectangle, Text, Title};

/// Column alignment.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// Renders rows under headers with padded columns.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.0.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, (w, (_, align)))) in cells.iter().zip(widths.iter().zip(headers)).enumerate()
        {
            if i > 0 {
                out.push_str("  ");
            }
            match align {
                Align::Left => {
                    let _ = write!(out, "{cell:<w$}");
                }
                Align::Right => {
                    let _ = write!(out, "{cell:>w$}");
                }
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.0).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The `schedule` table.
pub fn schedule_table(s: &Schedule, mg: &Metagraph, min_blocks: u64) -> String {
    let w = s.window();
    let served = s.allocations().iter().filter(|e| e.blocks > 0).count();
    let mut out = format!(
        "{} schedule for netuid {} · window {} · {} blocks · min {} per served validator\n\
         {} eligible validators of {} neurons, {} served, {} slots\n\n",
        s.strategy(),
        mg.netuid(),
        w,
        w.len,
        min_blocks,
        s.allocations().len(),
        mg.len(),
        served,
        s.slots().len(),
    );
    // Each validator's slot count and first slot, in one pass over the
    // slots (not one pass per validator: 65,536 of each was quadratic).
    let mut slots_of: HashMap<Uid, (usize, &Slot)> = HashMap::with_capacity(served);
    for sl in s.slots() {
        slots_of.entry(sl.uid).or_insert((0, sl)).0 += 1;
    }
    let rows: Vec<Vec<String>> = s
        .allocations()
        .iter()
        .map(|e| {
            let stake = mg
                .by_uid(e.uid)
                .map_or_else(String::new, |n| format_tao(n.stake.to_tao()));
            let where_ = match slots_of.get(&e.uid) {
                None => "-".to_owned(),
                Some((1, one)) => format!("[{}, {})", one.start.get(), one.end.get()),
                Some((n, first)) => format!("{n} slots from {}", first.start.get()),
            };
            vec![
                e.uid.to_string(),
                e.hotkey.to_string(),
                stake,
                e.blocks.to_string(),
                format!("{:.1}%", 100.0 * e.blocks as f64 / w.len as f64),
                where_,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            ("UID", Align::Right),
            ("HOTKEY", Align::Left),
            ("STAKE (TAO)", Align::Right),
            ("BLOCKS", Align::Right),
            ("SHARE", Align::Right),
            ("SLOTS", Align::Left),
        ],
        &rows,
    ));
    out
}

/// TAO with at most two decimals, for tables.
pub fn format_tao(t: Tao) -> String {
    let v = t.as_f64();
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The `sim` table.
pub fn sim_table(r: &SimReport) -> String {
    let mut out = format!(
        "simulation (seed {}): {} validators, {} miners, {} windows of {} blocks, min {} blocks\n\n",
        r.seed, r.validators, r.miners, r.windows, r.window_len, r.min_blocks
    );
    let timed = r.strategies.iter().any(|s| s.mean_alloc_us.is_some());
    let mut headers = vec![
        ("STRATEGY", Align::Left),
        ("MINERS", Align::Right),
        ("REWARD/COMPUTE", Align::Right),
        ("JAIN", Align::Right),
        ("COVERAGE", Align::Right),
    ];
    if timed {
        headers.push(("ALLOC µs", Align::Right));
    }
    let rows: Vec<Vec<String>> = r
        .strategies
        .iter()
        .map(|s| {
            let mut row = vec![
                s.strategy.clone(),
                s.miners.to_string(),
                format!("{:.4}", s.reward_per_compute),
                format!("{:.4}", s.jain_fairness),
                format!("{:.1}%", 100.0 * s.coverage),
            ];
            if let Some(us) = s.mean_alloc_us {
                row.push(format!("{us:.1}"));
            }
            row
        })
        .collect();
    out.push_str(&table(&headers, &rows));
    out
}

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn text(x: f64, y: f64, s: impl Into<String>) -> Text {
    Text::new(s.into())
        .set("x", x)
        .set("y", y)
        .set("font-family", "sans-serif")
        .set("font-size", 12)
}

/// The window as a Gantt strip: one colour per validator.
pub fn schedule_svg(s: &Schedule) -> String {
    let w = s.window();
    let (width, left, bar_w) = (960.0, 20.0, 920.0);
    let served: Vec<_> = s.allocations().iter().filter(|e| e.blocks > 0).collect();
    let height = 130.0 + 18.0 * served.len() as f64;
    let index: HashMap<Uid, usize> = served.iter().enumerate().map(|(i, e)| (e.uid, i)).collect();
    let color = |uid| {
        let i = index.get(&uid).copied().unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let x_of = |b: u64| left + bar_w * (b - w.start.get()) as f64 / w.len as f64;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, width, height))
        .set("width", width)
        .set("height", height)
        .add(text(
            left,
            20.0,
            format!("{} schedule, window {} ({} blocks)", s.strategy(), w, w.len),
        ));
    for slot in s.slots() {
        let x = x_of(slot.start.get());
        let rect = Rectangle::new()
            .set("x", x)
            .set("y", 35)
            .set("width", (x_of(slot.end.get()) - x).max(0.5))
            .set("height", 40)
            .set("fill", color(slot.uid))
            .add(Title::new(format!(
                "uid {}: blocks [{}, {})",
                slot.uid,
                slot.start.get(),
                slot.end.get()
            )));
        doc = doc.add(rect);
    }
    for i in 0..=8u64 {
        let b = w.start.get() + w.len * i / 8;
        let x = x_of(b);
        doc = doc
            .add(
                Line::new()
                    .set("x1", x)
                    .set("x2", x)
                    .set("y1", 75)
                    .set("y2", 82)
                    .set("stroke", "#333"),
            )
            .add(text(x - 12.0, 96.0, b.to_string()).set("font-size", 10));
    }
    for (i, e) in served.iter().enumerate() {
        let y = 118.0 + 18.0 * i as f64;
        doc = doc
            .add(
                Rectangle::new()
                    .set("x", left)
                    .set("y", y - 10.0)
                    .set("width", 12)
                    .set("height", 12)
                    .set("fill", color(e.uid)),
            )
            .add(text(
                left + 18.0,
                y,
                format!(
                    "uid {}  {}  {} blocks ({:.1}%)",
                    e.uid,
                    e.hotkey,
                    e.blocks,
                    100.0 * e.blocks as f64 / w.len as f64
                ),
            ));
    }
    doc.to_string()
}

/// Three bar charts (reward per compute, Jain fairness, coverage) side by side.
pub fn sim_svg(r: &SimReport) -> String {
    type Metric = fn(&StrategyReport) -> f64;
    let panels: [(&str, Metric); 3] = [
        ("reward per compute (ideal = 1)", |s| s.reward_per_compute),
        ("Jain fairness", |s| s.jain_fairness),
        ("coverage", |s| s.coverage),
    ];
    let n = r.strategies.len().max(1);
    let (pw, ph, top) = (300.0, 260.0, 60.0);
    let width = 20.0 + pw * 3.0;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, width, ph + top + 40.0))
        .set("width", width)
        .set("height", ph + top + 40.0)
        .add(text(
            20.0,
            24.0,
            format!(
                "akihabara sim (simulation), seed {}: {} validators, {} miners, {} windows",
                r.seed, r.validators, r.miners, r.windows
            ),
        ));
    for (p, (title, value)) in panels.iter().enumerate() {
        let x0 = 20.0 + pw * p as f64;
        let max = r.strategies.iter().map(value).fold(1.0f64, f64::max);
        let bw = (pw - 40.0) / n as f64;
        doc = doc.add(text(x0, top - 16.0, *title).set("font-weight", "bold"));
        for (i, s) in r.strategies.iter().enumerate() {
            let v = value(s);
            let h = (ph - 40.0) * (v / max).clamp(0.0, 1.0);
            let x = x0 + bw * i as f64;
            let y = top + (ph - 40.0) - h;
            doc = doc
                .add(
                    Rectangle::new()
                        .set("x", x + 4.0)
                        .set("y", y)
                        .set("width", bw - 8.0)
                        .set("height", h)
                        .set("fill", PALETTE[i % PALETTE.len()]),
                )
                .add(text(x + 4.0, y - 4.0, format!("{v:.3}")).set("font-size", 10))
                .add(text(x + 4.0, top + ph - 26.0, s.strategy.clone()).set("font-size", 10));
        }
        doc = doc.add(
            Line::new()
                .set("x1", x0)
                .set("x2", x0 + pw - 40.0)
                .set("y1", top + ph - 40.0)
                .set("y2", top + ph - 40.0)
                .set("stroke", "#333"),
        );
    }
    doc.to_string()
}

/// Writes `contents` to `path` crash-safely (see `akihabara_core::fs::write_atomic`).
/// Writes a file the user named (`--svg`, `--out` …); one that cannot be
/// written is bad input (exit 2): the path given is what must change.
pub fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_atomic(path, contents.as_bytes(), Access::Shared)
        .with_context(|| format!("writing {}", path.display()))
        .map_err(crate::exit::bad_input)
}

#[cfg(test)]
mod tests {

    use akihabara_core::strategy::{AllocationRequest, Eligibility, Proportional};
    use akihabara_core::{Block, Layout, Window};

    use super::*;

    fn schedule(mg: &Metagraph, len: u64, min: u64, layout: Layout) -> Schedule {
        let window = Window::new(Block(0), len).unwrap();
        let req = AllocationRequest::new(window, min, Eligibility::new().candidates(mg)).unwrap();
        Schedule::build(&Proportional, &req, layout).unwrap()
    }

    /// The SLOTS column: a range for one slot, a count and the first start
    /// for several, `-` for none.
    #[test]
    fn the_slots_column_describes_each_validators_slots() {
        let mg = akihabara_core::sim::synthetic_metagraph(3, 0, 5).unwrap();
        let s = schedule(&mg, 12, 1, Layout::Interleaved);
        let text = schedule_table(&s, &mg, 1);
        let slots_column: Vec<String> = text
            .lines()
            .skip(4)
            .map(|l| {
                let (_, rest) = l.split_once('%').unwrap();
                rest.trim().to_owned()
            })
            .collect();
        let expected: Vec<String> = s
            .allocations()
            .iter()
            .map(|e| {
                let mine: Vec<&Slot> = s.slots().iter().filter(|x| x.uid == e.uid).collect();
                match mine.as_slice() {
                    [] => "-".to_owned(),
                    [one] => format!("[{}, {})", one.start.get(), one.end.get()),
                    [first, ..] => format!("{} slots from {}", mine.len(), first.start.get()),
                }
            })
            .collect();
        assert_eq!(slots_column, expected);
        assert!(expected.iter().any(|c| c.contains("slots from")), "{text}");
        // A window too short for everyone leaves someone unserved.
        let s = schedule(&mg, 2, 1, Layout::Contiguous);
        let text = schedule_table(&s, &mg, 1);
        assert_eq!(
            text.lines().filter(|l| l.ends_with(" -")).count(),
            1,
            "{text}"
        );
    }

    /// 65,536 validators once took 65,536 scans of 65,536 slots (minutes
    /// unoptimised); one pass takes well under a second.
    #[test]
    fn the_schedule_table_is_linear_in_validators() {
        let mg = akihabara_core::sim::synthetic_metagraph(65_536, 0, 1).unwrap();
        let s = schedule(&mg, 4 * 65_536, 1, Layout::Contiguous);
        assert_eq!(s.slots().len(), 65_536);
        // Its speed is not timed here (shared, noisy machines): the render
        // indexes slots by uid in one pass, and this checks its output.
        let text = schedule_table(&s, &mg, 1);
        assert_eq!(text.lines().count(), 3 + 1 + 65_536);
        let first = &s.slots()[0];
        let row = text
            .lines()
            .find(|l| l.contains(&first.hotkey.to_string()))
            .unwrap();
        assert!(
            row.ends_with(&format!("[{}, {})", first.start.get(), first.end.get())),
            "{row}"
        );
    }
}
