//! The plain-text result table every benchmark prints.
//!
//! One column per subject (oxcd first, then its anchors), then one ratio column per anchor:
//! `oxcd / anchor`. Each row says whether a higher or a lower number is better, so a ratio
//! above 1.00 is a win on a "higher" row and a loss on a "lower" row. A subject that failed or
//! did not measure a row shows `-` and its ratio `n/a`.

use std::fmt::Write as _;

/// Which direction of a row's numbers is the good one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    fn label(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }
}

#[derive(Clone, Debug)]
struct Row {
    workload: String,
    unit: String,
    better: Better,
    values: Vec<Option<f64>>,
}

/// A result table: `subjects[0]` is compared against every other subject.
#[derive(Clone, Debug)]
pub struct Table {
    subjects: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    /// A table for `subjects`; the first one is the subject of the ratio columns.
    pub fn new(subjects: &[&str]) -> Table {
        Table {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; `values` holds one entry per subject, in the order given to [`Table::new`]
    /// (missing entries count as not measured).
    pub fn row(&mut self, workload: &str, unit: &str, better: Better, values: &[Option<f64>]) {
        let mut values = values.to_vec();
        values.resize(self.subjects.len(), None);
        self.rows.push(Row {
            workload: workload.into(),
            unit: unit.into(),
            better,
            values,
        });
    }

    /// Renders the table with aligned columns (text left, numbers right), one line per row.
    pub fn render(&self) -> String {
        let mut header = vec!["workload".to_string(), "unit".into(), "better".into()];
        header.extend(self.subjects.iter().cloned());
        let first = self.subjects.first().map(String::as_str).unwrap_or("?");
        header.extend(
            self.subjects
                .iter()
                .skip(1)
                .map(|anchor| format!("{first}/{anchor}")),
        );

        let mut lines = vec![header];
        for row in &self.rows {
            let mut cells = vec![
                row.workload.clone(),
                row.unit.clone(),
                row.better.label().into(),
            ];
            cells.extend(
                row.values
                    .iter()
                    .map(|v| v.map_or("-".into(), format_value)),
            );
            let subject = row.values.first().copied().flatten();
            cells.extend(
                row.values
                    .iter()
                    .skip(1)
                    .map(|anchor| format_ratio(subject, *anchor)),
            );
            lines.push(cells);
        }

        let columns = lines[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (index, line) in lines.iter().enumerate() {
            for (c, cell) in line.iter().enumerate() {
                let sep = if c == 0 { "" } else { "  " };
                if c < 3 {
                    let _ = write!(out, "{sep}{cell:<w$}", w = widths[c]);
                } else {
                    let _ = write!(out, "{sep}{cell:>w$}", w = widths[c]);
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            if index == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (columns - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out
    }
}

/// `subject / anchor` as `1.23x`; `n/a` when either side is missing or the anchor is zero.
pub fn format_ratio(subject: Option<f64>, anchor: Option<f64>) -> String {
    match (subject, anchor) {
        (Some(s), Some(a)) if a != 0.0 && s.is_finite() && a.is_finite() => {
            format!("{:.2}x", s / a)
        }
        _ => "n/a".into(),
    }
}

/// A number with precision that fits its size and `_` thousands separators on the integer part
/// (as Rust literals write them): `1_234_567`, `12.3`, `0.456`.
pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let (sign, unsigned) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |t| ("-", t));
    let (integer, fraction) = unsigned
        .split_once('.')
        .map_or((unsigned, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, digit) in integer.chars().enumerate() {
        if i > 0 && (integer.len() - i) % 3 == 0 {
            grouped.push('_');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_get_precision_by_size_and_grouped_thousands() {
        // Proves format_value's precision steps, grouping and sign handling.
        assert_eq!(format_value(1_234_567.4), "1_234_567");
        assert_eq!(format_value(999.6), "1_000");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(1.234), "1.23");
        assert_eq!(format_value(0.4567), "0.457");
        assert_eq!(format_value(-5_000.0), "-5_000");
    }

    #[test]
    fn ratios_need_both_sides_and_a_nonzero_anchor() {
        // Proves format_ratio divides subject by anchor and refuses missing or zero anchors.
        assert_eq!(format_ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(format_ratio(None, Some(2.0)), "n/a");
        assert_eq!(format_ratio(Some(3.0), None), "n/a");
        assert_eq!(format_ratio(Some(3.0), Some(0.0)), "n/a");
    }

    #[test]
    fn render_aligns_columns_and_adds_one_ratio_per_anchor() {
        // Proves the rendered layout: header, rule, rows, ratio columns, '-' for missing values.
        let mut table = Table::new(&["oxcd", "LMDB", "redb"]);
        table.row(
            "get",
            "ops/s",
            Better::Higher,
            &[Some(200.0), Some(100.0), None],
        );
        table.row(
            "size",
            "MiB",
            Better::Lower,
            &[Some(1.5), Some(3.0), Some(1.5)],
        );
        let expected = "\
workload  unit   better  oxcd  LMDB  redb  oxcd/LMDB  oxcd/redb
---------------------------------------------------------------
get       ops/s  higher   200   100     -      2.00x        n/a
size      MiB    lower   1.50  3.00  1.50      0.50x      1.00x
";
        assert_eq!(table.render(), expected);
    }
}
