"""`elspeth report`: one self-contained HTML page of a run and the lineage of its rows (collect.py gathers
the data from the Landscape, page.py writes it into page.html with page.css, page.js and the pipeline's
picture from picture.py)."""
