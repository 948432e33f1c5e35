//! A linearizability checker for recorded client histories.
