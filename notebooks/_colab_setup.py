# In Colab, install the course; anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "gliseg-nb @ git+https://github.com/gliseg-nb/gliseg-nb"
    from google.colab import output

    output.enable_custom_widget_manager()  # Colab draws the course's widgets only with this
