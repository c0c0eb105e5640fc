"""Running screenings at scale: batch files, trial portfolios, worker clusters and the result store."""
