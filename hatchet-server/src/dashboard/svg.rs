//! SVG drawn on the server: a run's DAG and the queue throughput chart. Plain shapes with presentation attributes,
//! every label escaped; no script, no external reference.

use super::html::esc;
use std::collections::HashMap;
use std::fmt::Write;

/// A node of a DAG: a task of a run.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Readable id (unique within the run).
    pub name: String,
    /// Readable ids of its parents.
    pub parents: Vec<String>,
    /// Its status (PENDING for a task not created yet).
    pub status: String,
    /// An on-failure task: drawn after everything else.
    pub on_failure: bool,
}

const NODE_W: i64 = 170;
const NODE_H: i64 = 46;
const GAP_X: i64 = 60;
const GAP_Y: i64 = 18;
const PAD: i64 = 12;

/// Fill colour of a status (a fixed palette; the status text never reaches an attribute unescaped).
fn fill(status: &str) -> &'static str {
    match status {
        "COMPLETED" => "#dcfce7",
        "FAILED" | "TIMED_OUT" => "#fee2e2",
        "CANCELLED" | "SKIPPED" => "#e5e7eb",
        "RUNNING" | "ASSIGNED" => "#dbeafe",
        "QUEUED" => "#fef3c7",
        _ => "#ffffff",
    }
}

fn stroke(status: &str) -> &'static str {
    match status {
        "COMPLETED" => "#15803d",
        "FAILED" | "TIMED_OUT" => "#b91c1c",
        "CANCELLED" | "SKIPPED" => "#6b7280",
        "RUNNING" | "ASSIGNED" => "#1d4ed8",
        "QUEUED" => "#a16207",
        _ => "#9ca3af",
    }
}

/// Column of every node: the longest path from a root (parents that are not nodes are ignored; a cycle, which the
/// extension refuses at registration, would only stop deepening).
fn layers(nodes: &[Node]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut depth = vec![0usize; nodes.len()];
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            for p in &n.parents {
                if let Some(&j) = index.get(p.as_str()) {
                    if depth[j] + 1 > depth[i] && depth[j] < nodes.len() {
                        depth[i] = depth[j] + 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let last = nodes
        .iter()
        .zip(&depth)
        .filter(|(n, _)| !n.on_failure)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or(0);
    for (i, n) in nodes.iter().enumerate() {
        if n.on_failure {
            depth[i] = last + 1;
        }
    }
    depth
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// The DAG of a run: one box per task (coloured by status, linking to its section `#task-<name>`), one curve per
/// parent edge, columns by depth.
pub(crate) fn dag(nodes: &[Node]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let depth = layers(nodes);
    let mut rows_in: HashMap<usize, i64> = HashMap::new();
    let mut pos = Vec::with_capacity(nodes.len());
    for d in &depth {
        let row = rows_in.entry(*d).or_insert(0);
        let d = i64::try_from(*d).unwrap_or(0);
        pos.push((PAD + d * (NODE_W + GAP_X), PAD + *row * (NODE_H + GAP_Y)));
        *row += 1;
    }
    let cols = i64::try_from(depth.iter().max().copied().unwrap_or(0)).unwrap_or(0) + 1;
    let rows = rows_in.values().max().copied().unwrap_or(1);
    let width = 2 * PAD + cols * NODE_W + (cols - 1) * GAP_X;
    let height = 2 * PAD + rows * NODE_H + (rows - 1) * GAP_Y;
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut out = format!(
        "<svg class=\"dag\" id=\"dag\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"task graph\">"
    );
    for (i, n) in nodes.iter().enumerate() {
        for p in &n.parents {
            if let Some(&j) = index.get(p.as_str()) {
                let (x1, y1) = (pos[j].0 + NODE_W, pos[j].1 + NODE_H / 2);
                let (x2, y2) = (pos[i].0, pos[i].1 + NODE_H / 2);
                let mid = (x1 + x2) / 2;
                let _ = write!(
                    out,
                    "<path d=\"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#94a3b8\" \
                     stroke-width=\"1.5\"/>"
                );
            }
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let _ = write!(
            out,
            "<a href=\"#task-{anchor}\" class=\"dag-node\" data-task=\"{anchor}\" data-status=\"{status}\">\
             <title>{name}: {status}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" \
             stroke=\"{stroke}\" stroke-width=\"1.5\"/>\
             <text x=\"{tx}\" y=\"{ty1}\" fill=\"#111827\" font-weight=\"600\">{short}</text>\
             <text x=\"{tx}\" y=\"{ty2}\" fill=\"{stroke}\">{status}</text></a>",
            anchor = esc(&n.name),
            name = esc(&n.name),
            status = esc(&n.status),
            fill = fill(&n.status),
            stroke = stroke(&n.status),
            tx = x + 10,
            ty1 = y + 19,
            ty2 = y + 36,
            short = esc(&truncate(&n.name, 22)),
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar chart of completions (green) and failures (red, stacked on top) per bucket, oldest left.
pub(crate) fn throughput(completed: &[i64], failed: &[i64], bucket_label: &str) -> String {
    const BAR: i64 = 22;
    const GAP: i64 = 4;
    const H: i64 = 90;
    const LEFT: i64 = 34;
    const BOTTOM: i64 = 18;
    let n = i64::try_from(completed.len().max(failed.len())).unwrap_or(0);
    let max = (0..completed.len().max(failed.len()))
        .map(|i| completed.get(i).copied().unwrap_or(0) + failed.get(i).copied().unwrap_or(0))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = LEFT + n * (BAR + GAP) + 8;
    let height = H + BOTTOM + 8;
    let mut out = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"throughput per {label}\">\
         <text x=\"2\" y=\"12\" fill=\"#6b7280\">{max}</text><text x=\"2\" y=\"{zero}\" fill=\"#6b7280\">0</text>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#cbd5e1\"/>",
        label = esc(bucket_label),
        zero = H + 8,
        base = H + 4,
        right = width - 4,
    );
    for i in 0..usize::try_from(n).unwrap_or(0) {
        let ok = completed.get(i).copied().unwrap_or(0);
        let bad = failed.get(i).copied().unwrap_or(0);
        let x = LEFT + i64::try_from(i).unwrap_or(0) * (BAR + GAP);
        let ok_h = ok * H / max;
        let bad_h = bad * H / max;
        let y_ok = H + 4 - ok_h;
        let y_bad = y_ok - bad_h;
        let _ = write!(
            out,
            "<g><title>{ok} completed, {bad} failed</title>\
             <rect x=\"{x}\" y=\"{y_ok}\" width=\"{BAR}\" height=\"{ok_h}\" fill=\"#22c55e\"/>\
             <rect x=\"{x}\" y=\"{y_bad}\" width=\"{BAR}\" height=\"{bad_h}\" fill=\"#ef4444\"/></g>"
        );
    }
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{y}\" fill=\"#6b7280\">-1h</text><text x=\"{x}\" y=\"{y}\" fill=\"#6b7280\">now</text></svg>",
        y = H + BOTTOM + 4,
        x = width - 30
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parents: &[&str]) -> Node {
        Node {
            name: name.into(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            status: "COMPLETED".into(),
            on_failure: false,
        }
    }

    #[test]
    fn layers_follow_the_longest_path() {
        let nodes = [
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a", "b"]),
            node("d", &[]),
        ];
        assert_eq!(layers(&nodes), vec![0, 1, 2, 0]);
        let mut on_failure = node("f", &[]);
        on_failure.on_failure = true;
        assert_eq!(
            layers(&[node("a", &[]), node("b", &["a"]), on_failure]),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn dag_escapes_names_and_draws_edges() {
        let svg = dag(&[node("<x>", &[]), node("y", &["<x>"])]);
        assert!(svg.contains("&lt;x&gt;"));
        assert!(!svg.contains("<x>"));
        assert_eq!(svg.matches("<path ").count(), 1);
        assert_eq!(svg.matches("<rect ").count(), 2);
    }

    #[test]
    fn chart_scales_to_the_largest_bucket() {
        let svg = throughput(&[0, 10, 5], &[0, 0, 5], "5 minutes");
        assert_eq!(svg.matches("<rect ").count(), 6);
        assert!(svg.contains("height=\"90\""), "{svg}");
    }
}
