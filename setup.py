"""The one compiled module: the loader's canonical-event transcoder (Cython).

Everything else is in pyproject.toml. ``optional``: where no C compiler is at hand (the
slim container image) the install still succeeds and the loader reads records on its
Python path (``streams/aggregation/decode.py`` says which path it took).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streams.aggregation._transcode",
            ["streams/aggregation/_transcode.pyx"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
