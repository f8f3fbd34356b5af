//! The dependency graph of a deployment: cycle detection that names the
//! cycle, and waves (a resource runs once everything it depends on has
//! succeeded).

use std::collections::{BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::error::{Error, FieldError, Result};
use crate::model::Edge;

/// A directed graph over resource names; an edge `a -> b` means `a` first.
#[derive(Debug, Clone)]
pub struct DependencyGraph {
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
}

impl DependencyGraph {
    /// Builds the graph; an edge naming an unknown resource is a validation
    /// error with the edge's position, self-edges are cycles.
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a str>, edges: &[Edge]) -> Result<Self> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for n in nodes {
            index
                .entry(n.to_string())
                .or_insert_with(|| graph.add_node(n.to_string()));
        }
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, e) in edges.iter().enumerate() {
            for end in [&e.from, &e.to] {
                if !index.contains_key(end) {
                    let known: Vec<&str> = graph.node_weights().map(String::as_str).collect();
                    errors.push(FieldError::new(
                        format!("dependencies[{i}]"),
                        format!(
                            "{end:?} is not a resource of this deployment (resources: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
            if errors.is_empty() && seen.insert((e.from.clone(), e.to.clone())) {
                graph.add_edge(index[&e.from], index[&e.to], ());
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation { errors });
        }
        Ok(DependencyGraph { graph, index })
    }

    /// Names of the resources `name` depends on directly.
    pub fn dependencies_of(&self, name: &str) -> Vec<&str> {
        let Some(&i) = self.index.get(name) else {
            return vec![];
        };
        self.graph
            .neighbors_directed(i, petgraph::Direction::Incoming)
            .map(|n| self.graph[n].as_str())
            .collect()
    }

    /// Every resource that depends on `name`, directly or not.
    pub fn dependents_of(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(&start) = self.index.get(name) else {
            return out;
        };
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            for next in self
                .graph
                .neighbors_directed(n, petgraph::Direction::Outgoing)
            {
                if out.insert(self.graph[next].clone()) {
                    stack.push(next);
                }
            }
        }
        out
    }

    /// Groups resources into waves (Kahn's algorithm, layer by layer; names
    /// sorted within a wave so plans are deterministic). A cycle is a
    /// [`Error::DependencyCycle`] naming its path, e.g. `a -> b -> c -> a`.
    pub fn waves(&self) -> Result<Vec<Vec<String>>> {
        let n = self.graph.node_count();
        let mut indegree: Vec<usize> = self
            .graph
            .node_indices()
            .map(|i| {
                self.graph
                    .neighbors_directed(i, petgraph::Direction::Incoming)
                    .count()
            })
            .collect();
        let mut current: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|i| indegree[i.index()] == 0)
            .collect();
        let mut waves = Vec::new();
        let mut placed = 0;
        while !current.is_empty() {
            placed += current.len();
            let mut next = Vec::new();
            for &node in &current {
                for succ in self
                    .graph
                    .neighbors_directed(node, petgraph::Direction::Outgoing)
                {
                    indegree[succ.index()] -= 1;
                    if indegree[succ.index()] == 0 {
                        next.push(succ);
                    }
                }
            }
            let mut names: Vec<String> = current.iter().map(|i| self.graph[*i].clone()).collect();
            names.sort();
            waves.push(names);
            current = next;
        }
        if placed < n {
            return Err(Error::DependencyCycle {
                path: self.find_cycle(&indegree),
            });
        }
        Ok(waves)
    }

    /// A cycle among the nodes Kahn's algorithm could not place, as a path
    /// starting and ending at its smallest name.
    fn find_cycle(&self, indegree: &[usize]) -> Vec<String> {
        let stuck: BTreeSet<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|i| indegree[i.index()] > 0)
            .collect();
        let Some(&start) = stuck.iter().min_by_key(|i| &self.graph[**i]) else {
            return vec![];
        };
        // Walk predecessors inside the stuck set: every stuck node has one,
        // so the walk must revisit a node; that loop is a cycle.
        let mut order = vec![start];
        let mut position = HashMap::from([(start, 0usize)]);
        let mut node = start;
        loop {
            let pred = self
                .graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
                .filter(|p| stuck.contains(p))
                .min_by_key(|p| &self.graph[*p])
                .expect("a stuck node has a stuck predecessor");
            if let Some(&at) = position.get(&pred) {
                let mut cycle: Vec<String> = order[at..]
                    .iter()
                    .rev()
                    .map(|i| self.graph[*i].clone())
                    .collect();
                // Rotate so the cycle starts at its smallest name, then close it.
                let min = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(min);
                cycle.push(cycle[0].clone());
                return cycle;
            }
            position.insert(pred, order.len());
            order.push(pred);
            node = pred;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(list: &[&str]) -> Vec<Edge> {
        list.iter().map(|e| Edge::parse(e).unwrap()).collect()
    }

    #[test]
    fn waves_follow_edges() {
        let g = DependencyGraph::new(
            ["app", "db", "cache", "net"],
            &edges(&["net -> db", "db -> app", "cache -> app", "net → cache"]),
        )
        .unwrap();
        assert_eq!(
            g.waves().unwrap(),
            vec![vec!["net"], vec!["cache", "db"], vec!["app"]]
        );
        assert_eq!(
            g.dependents_of("net"),
            BTreeSet::from(["app".to_string(), "cache".into(), "db".into()])
        );
        let mut deps = g.dependencies_of("app");
        deps.sort();
        assert_eq!(deps, ["cache", "db"]);
    }

    #[test]
    fn cycles_are_named() {
        let g = DependencyGraph::new(
            ["a", "b", "c", "d"],
            &edges(&["a -> b", "b -> c", "c -> a", "d -> a"]),
        )
        .unwrap();
        match g.waves().unwrap_err() {
            Error::DependencyCycle { path } => assert_eq!(path, ["a", "b", "c", "a"]),
            other => panic!("{other:?}"),
        }
        let g = DependencyGraph::new(["a"], &edges(&["a -> a"])).unwrap();
        assert_eq!(
            g.waves().unwrap_err().to_string(),
            "dependency cycle: a -> a"
        );
    }

    #[test]
    fn unknown_resources_in_edges_are_errors() {
        let err = DependencyGraph::new(["a"], &edges(&["a -> ghost"])).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::ValidationFailed);
        assert!(err.to_string().contains("ghost"));
    }
}
