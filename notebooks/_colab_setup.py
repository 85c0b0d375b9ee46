# Colab only: install the course package from GitHub. Colab's own TensorFlow already
# satisfies the package's lower bound, so pip leaves it alone (no reinstall). Colab also
# needs its custom widget manager to draw the course's ipywidgets viewers.
# Everywhere else (Binder, your machine, CI) this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet",
         "gliseg-nb @ git+https://github.com/gliseg-nb/gliseg-nb"],
        check=True,
    )
    importlib.invalidate_caches()  # make the freshly installed package importable now
    from google.colab import output

    output.enable_custom_widget_manager()
