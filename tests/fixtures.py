"""Where the shared public payload fixtures live: ``shared/fixtures`` beside the checkout.

CI clones the repository into a fresh folder with a copy of ``shared/`` beside it, so the path
is always relative to the checkout, never absolute.
"""

from synapseops.settings import PROJECT_ROOT

SHARED_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"
