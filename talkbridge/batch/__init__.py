"""Many rows through the job layer: manifests, a resumable ledger, a report, backends."""
