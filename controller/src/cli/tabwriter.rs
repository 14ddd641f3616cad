//! Column alignment exactly as kubectl does it.
//!
//! kubectl aligns its tables with Go's `text/tabwriter` (through the `liggitt/tabwriter` fork,
//! whose `RememberWidths` flag keeps `get -w` rows aligned with the table printed before
//! them) and its `describe` output with the same algorithm and other parameters. This is a
//! port of that algorithm for space padding and left alignment: text is cut into cells at
//! tabs, a *column block* is a run of consecutive lines that have a cell in that column, and
//! every cell of a block is padded to the widest cell plus the padding (at least the minimum
//! width). The last cell of a line is not tab-terminated, belongs to no column and is never
//! padded.

/// An elastic-tabstop writer: text goes in with [`TabWriter::write_str`] or
/// [`TabWriter::write_row`], aligned text comes out of [`TabWriter::flush`].
#[derive(Debug, Clone)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    remember_widths: bool,
    max_widths: Vec<usize>,
    /// Complete cells per line; the last line is the one being written.
    lines: Vec<Vec<String>>,
    /// The current, not yet terminated cell.
    cell: String,
    /// Text already formatted by an implicit flush.
    done: String,
}

impl TabWriter {
    /// A writer with Go's `minwidth` and `padding` parameters (space padding, left aligned).
    pub fn new(min_width: usize, padding: usize) -> Self {
        TabWriter {
            min_width,
            padding,
            remember_widths: false,
            max_widths: Vec::new(),
            lines: vec![Vec::new()],
            cell: String::new(),
            done: String::new(),
        }
    }

    /// kubectl's table writer: minimum width 6, padding 3, widths remembered across
    /// flushes (so rows printed by `get -w` line up with the table above them).
    pub fn for_tables() -> Self {
        let mut w = TabWriter::new(6, 3);
        w.remember_widths = true;
        w
    }

    /// kubectl's `describe` writer: minimum width 0, padding 2.
    pub fn for_describe() -> Self {
        TabWriter::new(0, 2)
    }

    /// Forgets the remembered column widths (a new table starts).
    pub fn forget_widths(&mut self) {
        self.max_widths.clear();
    }

    /// Adds text: `\t` ends a cell, `\n` ends a line.
    pub fn write_str(&mut self, text: &str) -> &mut Self {
        for ch in text.chars() {
            match ch {
                '\t' => {
                    self.terminate_cell();
                }
                '\n' => {
                    let cells = self.terminate_cell();
                    self.lines.push(Vec::new());
                    // Go flushes after a line of one cell, which cannot affect the columns
                    // of later lines.
                    if cells == 1 {
                        let text = self.format_buffer();
                        self.done.push_str(&text);
                    }
                }
                c => self.cell.push(c),
            }
        }
        self
    }

    /// Adds one line made of `cells`, separated by tabs (tabs and newlines inside a cell
    /// become spaces).
    pub fn write_row<S: AsRef<str>>(&mut self, cells: &[S]) -> &mut Self {
        let line: Vec<String> = cells
            .iter()
            .map(|c| c.as_ref().replace(['\t', '\n'], " "))
            .collect();
        self.write_str(&line.join("\t"));
        self.write_str("\n")
    }

    /// Formats everything written so far and returns it. Remembered widths survive.
    pub fn flush(&mut self) -> String {
        let text = self.format_buffer();
        let mut out = std::mem::take(&mut self.done);
        out.push_str(&text);
        out
    }

    /// Ends the current cell; returns the number of cells on the current line.
    fn terminate_cell(&mut self) -> usize {
        let cell = std::mem::take(&mut self.cell);
        let line = self
            .lines
            .last_mut()
            .expect("there is always a current line");
        line.push(cell);
        line.len()
    }

    /// Formats the buffered lines and resets the buffer.
    fn format_buffer(&mut self) -> String {
        if !self.cell.is_empty() {
            self.terminate_cell();
        }
        let mut out = String::new();
        let mut widths = Vec::new();
        let n = self.lines.len();
        self.format(&mut out, 0, n, &mut widths);
        self.lines = vec![Vec::new()];
        out
    }

    fn format(&mut self, out: &mut String, line0: usize, line1: usize, widths: &mut Vec<usize>) {
        let column = widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A cell exists in this column: print the lines before the block.
            self.write_lines(out, line0, this, widths);
            line0 = this;

            let mut width = self.min_width;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(text_width(&line[column]) + self.padding);
                this += 1;
            }

            if self.remember_widths {
                if self.max_widths.len() < widths.len() {
                    let known = self.max_widths.len();
                    self.max_widths.extend_from_slice(&widths[known..]);
                }
                match self.max_widths.get(column).copied() {
                    None => self.max_widths.push(width),
                    Some(max) if max > width => width = max,
                    Some(_) => self.max_widths[column] = width,
                }
            }

            widths.push(width);
            self.format(out, line0, this, widths);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, line0, line1, widths);
    }

    fn write_lines(&self, out: &mut String, line0: usize, line1: usize, widths: &[usize]) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                out.push_str(cell);
                if let Some(&w) = widths.get(j) {
                    let pad = w.saturating_sub(text_width(cell));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 != self.lines.len() {
                out.push('\n');
            }
        }
    }
}

/// Go's tabwriter counts runes.
fn text_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_padded_by_three_and_the_last_is_not() {
        let mut w = TabWriter::for_tables();
        w.write_row(&["NAME", "READY", "STATUS"]);
        w.write_row(&["a-long-pod-name", "1/1", "Running"]);
        assert_eq!(
            w.flush(),
            "NAME              READY   STATUS\na-long-pod-name   1/1     Running\n"
        );
    }

    #[test]
    fn minimum_width_is_six() {
        let mut w = TabWriter::for_tables();
        w.write_row(&["A", "B"]);
        assert_eq!(w.flush(), "A     B\n");
    }

    #[test]
    fn remembered_widths_keep_watch_rows_aligned() {
        let mut w = TabWriter::for_tables();
        w.write_row(&["NAME", "STATUS", "AGE"]);
        w.write_row(&["averyveryverylongname", "Running", "5s"]);
        let first = w.flush();
        w.write_row(&["x", "Pending", "0s"]);
        let second = w.flush();
        let col = first.lines().next().unwrap().find("STATUS").unwrap();
        assert_eq!(second.find("Pending").unwrap(), col, "{first}{second}");
        // A wider cell later widens the column for what follows.
        w.write_row(&["y", "ContainerCreatingForAWhile", "1s"]);
        let third = w.flush();
        w.write_row(&["z", "Running", "2s"]);
        let fourth = w.flush();
        assert_eq!(
            third.find("1s").unwrap(),
            fourth.find("2s").unwrap(),
            "{third}{fourth}"
        );
    }

    #[test]
    fn describe_blocks_align_consecutive_lines_only() {
        let mut w = TabWriter::for_describe();
        w.write_str("Name:\tmyblog\nNamespace:\tluffy\nContainers:\n  c:\n    Image:\tnginx\n    Restart Count:\t0\n");
        assert_eq!(
            w.flush(),
            "Name:       myblog\nNamespace:  luffy\nContainers:\n  c:\n    Image:          nginx\n    Restart Count:  0\n"
        );
    }

    #[test]
    fn text_without_final_newline_is_kept() {
        let mut w = TabWriter::new(0, 1);
        w.write_str("a\tb\nccc\td");
        assert_eq!(w.flush(), "a   b\nccc d");
    }
}
