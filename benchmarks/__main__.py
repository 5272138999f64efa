"""`make bench`: every speed figure, each with its baseline from the same run."""

from benchmarks import batch_run, end_to_end, http_ingest, sr_read

sr_read.main()
end_to_end.main()
batch_run.main()
http_ingest.main()
