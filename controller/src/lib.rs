//! kelp-controller: store, API, scheduler, controllers, node hub and the `kelp` CLI.
