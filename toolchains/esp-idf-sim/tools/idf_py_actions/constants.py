# ESP-IDF stand-in (esp-idf-sim), v5.3.x: the targets idf.py offers, same names as ESP-IDF's
# tools/idf_py_actions/constants.py. PREVIEW_TARGETS are only offered with `idf.py --preview`.
GENERATORS = ['Ninja']
URL_TO_DOC = 'https://docs.espressif.com/projects/esp-idf'

SUPPORTED_TARGETS = ['esp32', 'esp32s2', 'esp32c3', 'esp32s3', 'esp32c2', 'esp32c6', 'esp32h2', 'esp32p4']
PREVIEW_TARGETS = ['linux', 'esp32c5', 'esp32c61']
