"""xmlsec and lxml are one pair of binary wheels linking the same libxml2: a mismatched pair fails at
import ("lxml & xmlsec libxml2 library version mismatch"), so this module fails at once in CI."""

from __future__ import annotations

import pytest
import xmlsec
from lxml import etree

from tests.saml_idp import TestIdP


def test_xmlsec_and_lxml_link_the_same_libxml2():
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION


@pytest.mark.parametrize("tamper", [False, True])
def test_xmlsec_verifies_an_rsa_sha256_signature(tamper):
    idp = TestIdP()
    signed = etree.fromstring(idp.sign(b'<doc xmlns="urn:test" ID="d1"><v>42</v></doc>'))
    if tamper:
        signed.find("{urn:test}v").text = "43"
    node = xmlsec.tree.find_node(signed, xmlsec.constants.NodeSignature)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(idp.certificate_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.register_id(signed, "ID")
    if tamper:
        with pytest.raises(xmlsec.Error):
            context.verify(node)
    else:
        context.verify(node)
