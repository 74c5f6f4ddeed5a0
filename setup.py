"""Package layout the pyproject.toml cannot express alone: the wire codec lives in the top-level
``protocol/`` folder but installs as ``kbroker_protocol``, a name of kbroker's own, so that installing
kbroker never puts a generic ``protocol`` package into site-packages."""
from setuptools import find_namespace_packages, setup

codec = ["kbroker_protocol" + name[len("protocol"):]
         for name in find_namespace_packages(include=["protocol", "protocol.*"])]
setup(packages=find_namespace_packages(include=["kbroker", "kbroker.*"]) + codec,
      package_dir={"kbroker_protocol": "protocol"})
