"""`nvcaffe serve`: a DIGITS-style web app, a thin layer over what exists. A dataset is
convert_imageset and compute_image_mean runs (build_dataset.py), a job is an `nvcaffe train`
process in its own folder (jobs.py, runner.py), curves are parse_log's rows of its logs
(metrics.py), inference is caffe.Net (inference.py, inside.py). The jobs folder is the only state
(storage.py, tasks.py). Flask is imported only by app.py, api.py, pages.py and context.py, so
`import nvcaffe_py` and the modules here that do the work never need the `serve` extra."""
