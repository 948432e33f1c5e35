//! Workloads: operation generators for the harness's clients and the checker each is judged by.
//! The register, set and counter workloads arrive with the harness.
