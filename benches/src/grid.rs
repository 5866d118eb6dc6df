//! A plain-text grid: cells in aligned columns under a header and a rule, for benchmark tables
//! whose shape does not fit [`crate::table::Table`] (one row per subject and setting, several
//! numbers per row).

/// Lays out `lines` (the first one is the header; every line has the header's number of cells)
/// in columns two spaces apart: the first `text_columns` left-aligned, the others (numbers)
/// right-aligned, a rule of `-` under the header, no trailing spaces.
pub fn render(lines: &[Vec<String>], text_columns: usize) -> String {
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|line| line.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let mut text = String::new();
        for (c, (cell, width)) in line.iter().zip(&widths).enumerate() {
            let sep = if c == 0 { "" } else { "  " };
            if c < text_columns {
                text.push_str(&format!("{sep}{cell:<width$}"));
            } else {
                text.push_str(&format!("{sep}{cell:>width$}"));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
        if index == 0 {
            let total = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_left_and_numbers_right_under_a_rule() {
        // Proves column widths, alignment per column kind, the rule and trimmed line ends.
        let lines: Vec<Vec<String>> =
            [["b", "subject", "n/s"], ["1", "raw", "12"], ["64", "x", ""]]
                .iter()
                .map(|l| l.iter().map(|c| c.to_string()).collect())
                .collect();
        let expected = "\
b   subject  n/s
----------------
1   raw       12
64  x
";
        assert_eq!(render(&lines, 2), expected);
        assert_eq!(render(&[], 1), "");
    }
}
